"""Schema of the ``data`` section (conf/data/default.yaml holds the values and says what
each key does; asrkit.data.loader reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from asrkit.arg_types import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Seed,
    UnitInterval,
)


@dataclass
class FeaturesConfig:
    num_mel_bins: PositiveInt = MISSING
    frame_length: PositiveFloat = MISSING
    frame_shift: PositiveFloat = MISSING
    dither: NonNegativeFloat = MISSING


@dataclass
class SpecAugConfig:
    num_freq_masks: NonNegativeInt = MISSING
    freq_mask_width: NonNegativeInt = MISSING
    num_time_masks: NonNegativeInt = MISSING
    time_mask_width: NonNegativeFloat = MISSING
    time_masks_per_frame: NonNegativeFloat = MISSING
    time_warp: NonNegativeInt = MISSING


@dataclass
class SamplerConfig:
    max_frames: PositiveInt = MISSING
    num_buckets: PositiveInt = MISSING
    shuffle: bool = MISSING
    seed: Seed = MISSING


@dataclass
class FiltersConfig:
    min_duration: NonNegativeFloat = MISSING
    max_duration: PositiveFloat = MISSING

    def cross_check(self) -> list[tuple[str, str]]:
        if self.max_duration < self.min_duration:
            message = f"{self.max_duration} is below data.filters.min_duration={self.min_duration}"
            return [("max_duration", message)]
        return []


@dataclass
class DataConfig:
    train: str | None = MISSING
    dev: str | None = MISSING
    cmvn: str | None = MISSING
    sample_rate: PositiveInt = MISSING
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    specaug: SpecAugConfig = field(default_factory=SpecAugConfig)
    speed_perturb: list[PositiveFloat] = MISSING
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    num_workers: NonNegativeInt = MISSING
    max_fail_fraction: UnitInterval = MISSING
