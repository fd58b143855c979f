"""Schema of the decoding config (conf/decode.yaml holds the values and says what each key
does; asrkit.decoding.run reads them). Each search method's own options live in its section
``search.<method>``, typed by the method's annotated signature (asrkit.decoding.search)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from omegaconf import MISSING

from asrkit.arg_types import Ge, NonNegativeInt, OneOf, PositiveInt, UnitInterval

LeftChunks = Annotated[int, Ge(-1)]  # -1: all (as asrkit.models.chunk_mask's)


@dataclass
class NormalizeConfig:
    case: Annotated[str, OneOf("keep", "lower", "upper")] = MISSING
    punctuation: Annotated[str, OneOf("keep", "remove")] = MISSING


@dataclass
class DecodeConfig:
    exp_dir: str | None = MISSING
    checkpoint: str | None = MISSING
    test_sets: Any = MISSING       # a list of manifests (one path is taken as a list of one)
    methods: Any = MISSING         # a list of method names (one name likewise)
    beam: PositiveInt = MISSING
    ctc_weight: UnitInterval = MISSING
    search: dict[str, Any] = field(default_factory=dict)
    decoding_chunk_size: NonNegativeInt | None = MISSING   # None: the encoder's; 0: full
    num_decoding_left_chunks: LeftChunks | None = MISSING  # None: the encoder's; -1: all
    batch_size: PositiveInt = MISSING
    max_frames: PositiveInt = MISSING
    num_workers: NonNegativeInt = MISSING
    device: str = MISSING
    precision: Annotated[str, OneOf("fp32", "bf16", "fp16", "auto")] = MISSING
    threads: PositiveInt | None = MISSING
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    out_dir: str | None = MISSING
    trust_modules: list[str] = MISSING   # modules of one's own a stored model config may name
