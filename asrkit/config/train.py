"""Schema of the training config (conf/train.yaml): its top-level keys, and the sections
typed by a dataclass. The sections that name a builder with ``_target_`` (encoder, decoder,
transducer, model, optim, scheduler) are typed by that builder's annotated signature instead
(asrkit.config.targets), so a new encoder or optimiser needs no schema of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from omegaconf import MISSING

from asrkit.arg_types import Ge
from asrkit.config.data import DataConfig
from asrkit.config.trainer import TrainerConfig


@dataclass
class TokenizerConfig:
    dir: str | None = MISSING


@dataclass
class TrainConfig:
    exp_dir: str = MISSING
    vocab_size: Annotated[int, Ge(3)] | None = MISSING  # blank, unk, sos/eos at least
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    encoder: Any = MISSING
    decoder: Any = MISSING
    transducer: Any = MISSING
    model: Any = MISSING
    optim: Any = MISSING
    scheduler: Any = MISSING

    def cross_check(self) -> list[tuple[str, str]]:
        if not self.exp_dir.strip():  # "" would train into the current directory
            return [("exp_dir", "must name a directory, got an empty string")]
        return []
