"""The encoder contract: what the joint model, the data pipeline and the decoders may rely
on, whatever the encoder (an icefall-style ``EncoderInterface``, as a ``typing.Protocol``).

    enc, enc_lens = encoder(feats, feat_lens)   # (batch, T', output_dim), (batch,)
    encoder.output_lengths(feat_lens)           # enc_lens, without running the encoder
    encoder.forward_with_intermediates(feats, feat_lens, layers=(2,)) -> EncoderOutput
    encoder.intermediate_dims()                 # output size of layer 1 .. L

``output_lengths`` is the encoder's frame-rate reduction as a function of input frames:
the data loader's token filter calls it to drop transcripts that have more tokens than
encoder frames (CTC cannot align them), so the loader never needs to know how an encoder
subsamples. ``layers`` are 1-based layer numbers; their outputs come back in
``EncoderOutput.intermediates`` for InterCTC and intermediate attention decoders, with the
encoder's own training losses (asrkit.models.encoder_output). A new encoder is any
``nn.Module`` with these members; ``is_encoder`` checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from asrkit.models.encoder_output import EncoderOutput


@runtime_checkable
class Encoder(Protocol):
    output_dim: int  # size of the last dimension of ``enc``

    def __call__(self, feats: torch.Tensor,
                 feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (batch, T, input_dim), feat_lens (batch,) -> (enc (batch, T', output_dim),
        enc_lens (batch,))."""

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """(batch,) input frame counts -> (batch,) output frame counts (``enc_lens``)."""

    def forward_with_intermediates(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                   layers: Sequence[int] = ()) -> EncoderOutput:
        """As ``forward``, plus the outputs of ``layers`` and the encoder's own losses."""

    def intermediate_dims(self) -> list[int]:
        """Output size of each layer, 1 .. depth."""


MEMBERS = ("output_dim", "output_lengths", "forward_with_intermediates", "intermediate_dims")


def missing_members(encoder: object) -> list[str]:
    """The members of the contract ``encoder`` lacks (empty: it is an Encoder)."""
    return [name for name in MEMBERS if not hasattr(encoder, name)]
