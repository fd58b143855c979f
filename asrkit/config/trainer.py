"""Schema of the ``trainer`` section (conf/trainer/default.yaml holds the values and says
what each key does; asrkit.training.trainer reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from omegaconf import MISSING

from asrkit.arg_types import NonNegativeInt, OneOf, PositiveFloat, PositiveInt, Seed

BEST_METRICS = ("dev_loss", "dev_wer", "dev_cer", "dev_acc")


@dataclass
class MwerConfig:
    enabled: bool = MISSING
    nbest: PositiveInt = MISSING
    beam: PositiveInt = MISSING

    def cross_check(self) -> list[tuple[str, str]]:
        if self.enabled and self.beam < self.nbest:
            return [("beam", f"must be >= trainer.mwer.nbest ({self.nbest}), got {self.beam}")]
        return []


@dataclass
class TrainerConfig:
    max_epochs: PositiveInt = MISSING
    accum_grad: PositiveInt = MISSING
    grad_clip: PositiveFloat | None = MISSING
    precision: Annotated[str, OneOf("auto", "fp32", "bf16", "fp16")] = MISSING
    device: Annotated[str, OneOf("auto", "cpu", "cuda")] = MISSING
    compile: bool = MISSING
    activation_checkpointing: bool = MISSING
    seed: Seed = MISSING
    log_interval: PositiveInt = MISSING
    valid_interval: NonNegativeInt = MISSING
    save_interval_steps: NonNegativeInt = MISSING
    keep_last: NonNegativeInt = MISSING
    keep_best: NonNegativeInt = MISSING
    best_metric: str = MISSING
    resume: str | None = MISSING
    init_from: str | None = MISSING
    init_modules: list[str] | None = MISSING
    mwer: MwerConfig = field(default_factory=MwerConfig)
    devices: PositiveInt = MISSING
    max_nan_in_a_row: PositiveInt = MISSING
    tensorboard: bool = MISSING
    num_attention_images: NonNegativeInt = MISSING
    progress_bar: Annotated[Any, OneOf("auto", True, False)] = MISSING
    keep_freed_memory: bool = MISSING

    def cross_check(self) -> list[tuple[str, str]]:
        errors = []
        if self.best_metric not in BEST_METRICS and not self.best_metric.startswith("dev_loss_"):
            errors.append(("best_metric", (f"must be one of {', '.join(BEST_METRICS)} or "
                                           f"dev_loss_<term>, got {self.best_metric!r}")))
        if self.compile and self.activation_checkpointing:
            errors.append(("activation_checkpointing", (
                "not together with trainer.compile=true (torch 2.11's inductor fails on "
                "checkpointed layers once lengths vary); choose one")))
        if self.compile and self.mwer.enabled:
            errors.append(("mwer.enabled", (
                "not together with trainer.compile=true (the beam search between steps "
                "defeats the compiled graph); choose one")))
        if self.init_modules is not None and not self.init_modules:
            errors.append(("init_modules", ("an empty list loads nothing; null loads every "
                                            "tensor that fits, or name modules: [encoder]")))
        if self.init_modules and self.init_from is None:
            errors.append(("init_modules", "only with trainer.init_from=<checkpoint>"))
        if self.keep_last == 0 and self.keep_best == 0:
            errors.append(("keep_last",
                           "keep_last and keep_best are both 0: no checkpoint would be kept"))
        return errors
