"""Kaldi-compatible log-mel filterbank features (torchaudio.compliance.kaldi.fbank).

Waveforms are scaled to the 16-bit integer range first, as Kaldi, ESPnet and WeNet do, so
features (and CMVN statistics) are comparable with theirs. Dither is added here with an
explicit generator rather than inside torchaudio (which draws from the global RNG), so a
training run's features are reproducible whatever the DataLoader worker layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchaudio.compliance import kaldi

INT16_SCALE = 32768.0


@dataclass(frozen=True)
class FbankExtractor:
    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length: float = 25.0  # ms
    frame_shift: float = 10.0  # ms

    def __post_init__(self) -> None:
        for name, kinds in (("sample_rate", int), ("num_mel_bins", int),
                            ("frame_length", (int, float)), ("frame_shift", (int, float))):
            value = getattr(self, name)
            if not isinstance(value, kinds) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"features.{name}: must be a positive "
                                 f"{'integer' if kinds is int else 'number'}, got {value!r}")
        for name, samples in (("frame_length", self.window_samples),
                              ("frame_shift", self.shift_samples)):
            if samples < 1:
                raise ValueError(f"features.{name}: {getattr(self, name)} ms is less than one "
                                 f"sample at {self.sample_rate} Hz")

    @classmethod
    def from_config(cls, data: dict) -> FbankExtractor:
        """The extractor a ``data`` config section describes (conf/data/default.yaml)."""
        features = data["features"]
        try:
            return cls(sample_rate=data["sample_rate"], num_mel_bins=features["num_mel_bins"],
                       frame_length=features["frame_length"],
                       frame_shift=features["frame_shift"])
        except ValueError as e:  # named as the config key: data.features.frame_shift
            raise ValueError(f"data.{e}") from None

    @property
    def window_samples(self) -> int:
        return int(self.sample_rate * self.frame_length / 1000)

    @property
    def shift_samples(self) -> int:
        return int(self.sample_rate * self.frame_shift / 1000)

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi produces for `num_samples` (snip_edges=True)."""
        if num_samples < self.window_samples:
            return 0
        return 1 + (num_samples - self.window_samples) // self.shift_samples

    def frames_for_duration(self, seconds: float) -> int:
        return self.num_frames(int(seconds * self.sample_rate))

    def __call__(
        self, wave: torch.Tensor, dither: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(samples,) float waveform in [-1, 1] -> (frames, num_mel_bins) log-mel features."""
        if wave.numel() < self.window_samples:
            raise ValueError(
                f"audio of {wave.numel()} samples is shorter than one {self.frame_length} ms window"
            )
        scaled = wave.unsqueeze(0) * INT16_SCALE  # (1, samples)
        if dither > 0:
            scaled = scaled + dither * torch.randn(scaled.shape, generator=generator)
        return kaldi.fbank(
            scaled, num_mel_bins=self.num_mel_bins, frame_length=self.frame_length,
            frame_shift=self.frame_shift, dither=0.0, energy_floor=0.0,
            sample_frequency=self.sample_rate,
        )
