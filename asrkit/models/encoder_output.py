"""What an encoder hands the model during training, beyond ``(enc, enc_lens)``.

Every encoder keeps ``forward(feats, feat_lens) -> (enc, enc_lens)`` for decoding and has

    forward_with_intermediates(feats, feat_lens, layers=()) -> EncoderOutput
    intermediate_dims() -> list[int]     # output size of layer 1 .. L (len = depth)

``layers`` are 1-based layer (block) numbers; their outputs come back in ``intermediates``
for InterCTC and intermediate attention decoders (asrkit.models.intermediate). An encoder
with training-time losses of its own (MoE balance losses, a CTC loss on a shared embedding)
returns them here too, so ``ASRModel.forward`` adds and logs them without knowing the
encoder's type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn


class AuxCTC(NamedTuple):
    """A CTC loss the encoder asks for: ``weight * head(hidden, lens, transcript)``."""

    weight: float
    head: nn.Module  # an asrkit.models.ctc.CTC
    hidden: torch.Tensor  # (batch, T_k, D_k)
    lens: torch.Tensor  # (batch,)


@dataclass
class EncoderOutput:
    enc: torch.Tensor  # (batch, T', output_dim)
    enc_lens: torch.Tensor  # (batch,)
    # layer number -> (hidden (batch, T_l, D_l), lens (batch,))
    intermediates: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    # weighted encoder-side loss to add to the model loss (None: nothing to add)
    aux_loss: torch.Tensor | None = None
    # scalar entries to log (unweighted loss terms, expert loads, ...)
    aux_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    # name -> CTC losses against the transcript, logged as loss_ctc_<name>
    aux_ctc: dict[str, AuxCTC] = field(default_factory=dict)


def check_layers(layers, depth: int, encoder: str, what: str = "intermediate layer") -> None:
    """Raise ValueError, naming ``encoder`` (or the key), for a requested layer outside
    1..depth or named twice."""
    for layer in layers:
        if not 1 <= layer <= depth:
            raise ValueError(f"{encoder}: {what} {layer} is outside 1..{depth}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{encoder}: {list(layers)} names one {what} twice")
