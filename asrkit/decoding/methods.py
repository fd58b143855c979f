"""The decoding methods by the names configs and the command line use (one small registry).

    methods = resolve_methods(["ctc_greedy", "attention_rescoring"], model)
    nbest = methods[0].run(model, enc, enc_lens, ctc_log_probs, DecodeOptions(beam=10))

| name                  | search                                   | needs decoder |
|-----------------------|------------------------------------------|---------------|
| `ctc_greedy`          | best path, collapsed                     | no            |
| `ctc_prefix_beam`     | CTC prefix beam search                   | no            |
| `attention`           | attention decoder beam search            | yes           |
| `attention_rescoring` | CTC N-best rescored by the decoder       | yes           |
| `joint`               | one-pass joint CTC/attention beam search | yes           |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from asrkit.decoding.attention_beam import attention_beam_search
from asrkit.decoding.attention_rescoring import attention_rescoring
from asrkit.decoding.ctc_greedy import ctc_greedy_search
from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
from asrkit.decoding.hypothesis import NBest
from asrkit.decoding.joint_ctc_attention import joint_ctc_attention_search
from asrkit.models.asr_model import ASRModel


@dataclass(frozen=True)
class DecodeOptions:
    beam: int = 10
    ctc_weight: float = 0.3         # attention_rescoring, joint
    length_penalty: float = 0.0     # attention, joint: added per output token
    length_norm: bool = False       # attention, joint: rank by score / (tokens + 1)
    ctc_top_k: int | None = None    # labels tried per frame by CTC prefix beam (None = beam)
    pre_beam: int | None = None     # joint: tokens CTC-scored per hypothesis (None = 1.5 beam)
    max_len_ratio: float = 1.0      # attention, joint: at most ceil(ratio * T') output tokens
    rescoring_beam: int | None = None  # attention_rescoring: its CTC N-best size (None = beam)

    def max_len(self, enc_lens: torch.Tensor) -> torch.Tensor:
        """(B,) output-length limits of attention/joint search from the encoder lengths."""
        return (enc_lens.double() * self.max_len_ratio).ceil().long().clamp(min=1)

    def __post_init__(self) -> None:
        if self.beam < 1:
            raise ValueError(f"beam: must be >= 1, got {self.beam}")
        if not 0.0 <= self.ctc_weight <= 1.0:
            raise ValueError(f"ctc_weight: must be in [0, 1], got {self.ctc_weight}")
        if self.max_len_ratio <= 0:
            raise ValueError(f"max_len_ratio: must be > 0, got {self.max_len_ratio}")
        for key in ("ctc_top_k", "pre_beam", "rescoring_beam"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key}: must be >= 1 or null, got {value}")


Search = Callable[[ASRModel, torch.Tensor, torch.Tensor, torch.Tensor, DecodeOptions], list[NBest]]


@dataclass(frozen=True)
class Method:
    name: str
    run: Search              # (model, enc, enc_lens, ctc_log_probs, options) -> N-best lists
    needs_decoder: bool
    needs_ctc: bool
    option_keys: tuple[str, ...] = ()  # the DecodeOptions fields this method uses

    def options_used(self, options: DecodeOptions) -> dict:
        """The options that affect this method (recorded beside its results)."""
        return {key: getattr(options, key) for key in self.option_keys}


METHODS = {m.name: m for m in (
    Method("ctc_greedy", lambda model, enc, lens, ctc, o: ctc_greedy_search(
        ctc, lens, model.blank_id), needs_decoder=False, needs_ctc=True),
    Method("ctc_prefix_beam", lambda model, enc, lens, ctc, o: ctc_prefix_beam_search(
        ctc, lens, o.beam, model.blank_id, o.ctc_top_k), needs_decoder=False, needs_ctc=True,
        option_keys=("beam", "ctc_top_k")),
    Method("attention", lambda model, enc, lens, ctc, o: attention_beam_search(
        model, enc, lens, o.beam, o.length_penalty, o.length_norm, max_len=o.max_len(lens)),
        needs_decoder=True, needs_ctc=False,
        option_keys=("beam", "length_penalty", "length_norm", "max_len_ratio")),
    Method("attention_rescoring", lambda model, enc, lens, ctc, o: attention_rescoring(
        model, enc, lens, ctc, o.rescoring_beam or o.beam, o.ctc_weight, o.ctc_top_k),
        needs_decoder=True, needs_ctc=True,
        option_keys=("beam", "rescoring_beam", "ctc_weight", "ctc_top_k")),
    Method("joint", lambda model, enc, lens, ctc, o: joint_ctc_attention_search(
        model, enc, lens, ctc, o.beam, o.ctc_weight, o.length_penalty, o.length_norm,
        pre_beam=o.pre_beam, max_len=o.max_len(lens)), needs_decoder=True, needs_ctc=True,
        option_keys=("beam", "ctc_weight", "length_penalty", "length_norm", "pre_beam",
                     "max_len_ratio")),
)}


def resolve_methods(names: Sequence[str], model: ASRModel | None = None) -> list[Method]:
    """The methods named, checked before any decoding: unknown names, duplicates and
    decoder-based methods on a CTC-only model fail with the name."""
    if not names:
        raise ValueError(f"methods: empty (known: {', '.join(METHODS)})")
    methods = []
    for name in names:
        if name not in METHODS:
            raise ValueError(f"methods: unknown method {name!r} (known: {', '.join(METHODS)})")
        if name in (m.name for m in methods):
            raise ValueError(f"methods: {name!r} listed twice")
        method = METHODS[name]
        if model is not None and method.needs_decoder and model.decoder is None:
            raise ValueError(f"methods: {name!r} needs an attention decoder; this model is "
                             "CTC-only (use ctc_greedy or ctc_prefix_beam)")
        methods.append(method)
    return methods
