"""Losses on intermediate encoder layers (training only).

- InterCTC (Lee & Watanabe 2021, arXiv 2102.03216): CTC losses on chosen intermediate
  encoder layers, with the top CTC head (shared, as in the paper) or heads of their own,
  mixed into the CTC term: ``(1 - w) * L_CTC + w * mean_k L_InterCTC_k`` (w = 0.3 at layer
  ⌊L/2⌋ in the paper).
- Intermediate attention decoders (3M's multi-level, You et al. 2022, arXiv 2204.03178):
  extra attention decoders fed by chosen encoder layers (1/3 and 2/3 of the depth), each
  loss added to the attention term with its weight (3M: the top decoder's, 1).

Layers are given as 1-based block numbers (int) or as fractions of the encoder's depth
(a float in (0, 1), rounded to the nearest block, halves down: 0.5 of 5 blocks is block 2,
the paper's ⌊L/2⌋; 1/3 and 2/3 of 12 are blocks 4 and 8), so a preset keeps meaning the
same depth when ``encoder.num_layers`` changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from asrkit.models.ctc import CTC


def resolve_layers(spec: Sequence[int | float], depth: int, what: str) -> tuple[int, ...]:
    """Layer numbers or depth fractions -> sorted distinct 1-based layer numbers.

    Raises ValueError naming ``what`` for a layer outside 1..depth or a float that is not a
    fraction in (0, 1)."""
    layers = []
    for item in spec:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            # a config error (ValueError, as entry points report them), not a caller's bug
            raise ValueError(  # noqa: TRY004
                f"{what}: {item!r} is neither a layer number nor a depth fraction")
        if isinstance(item, float):
            if not 0.0 < item < 1.0:
                raise ValueError(f"{what}: {item} is not a fraction in (0, 1) of the encoder "
                                 f"depth (write a layer number as an integer)")
            item = max(1, math.ceil(item * depth - 0.5 - 1e-6))  # nearest, halves down
        if not 1 <= item <= depth:
            raise ValueError(f"{what}: layer {item} is outside 1..{depth} (the encoder depth)")
        layers.append(int(item))
    if len(set(layers)) != len(layers):
        raise ValueError(f"{what}: {list(spec)} names a layer twice (depth {depth})")
    return tuple(sorted(layers))


def encoder_depth_dims(encoder: nn.Module) -> list[int]:
    """Output size of each encoder layer (len = depth); ValueError if the encoder does not
    expose intermediate layers."""
    if not hasattr(encoder, "intermediate_dims"):
        raise ValueError(f"{type(encoder).__name__} does not expose intermediate layers "
                         f"(needs intermediate_dims and forward_with_intermediates)")
    return list(encoder.intermediate_dims())


class InterCTC(nn.Module):
    """CTC losses on intermediate layers; ``heads`` is empty when the top head is shared."""

    def __init__(self, layers: Sequence[int], layer_dims: Sequence[int], vocab_size: int,
                 blank_id: int, shared_head_dim: int | None) -> None:
        """layers: resolved layer numbers; layer_dims: their output sizes;
        shared_head_dim: the top CTC head's input size to share it, None for own heads."""
        super().__init__()
        self.layers = tuple(layers)
        if shared_head_dim is not None:
            for layer, dim in zip(self.layers, layer_dims, strict=True):
                if dim != shared_head_dim:
                    raise ValueError(f"interctc_shared_head: layer {layer} has size {dim}, the "
                                     f"CTC head takes {shared_head_dim}; set "
                                     f"interctc_shared_head=false")
            self.heads = nn.ModuleList()
        else:
            self.heads = nn.ModuleList(CTC(dim, vocab_size, blank_id) for dim in layer_dims)

    def forward(self, intermediates: dict[int, tuple[torch.Tensor, torch.Tensor]],
                tokens: torch.Tensor, token_lens: torch.Tensor,
                shared_head: CTC) -> dict[int, torch.Tensor]:
        """-> {layer: CTC loss of that layer's output}."""
        losses = {}
        for i, layer in enumerate(self.layers):
            head = self.heads[i] if len(self.heads) else shared_head
            hidden, lens = intermediates[layer]
            losses[layer] = head(hidden, lens, tokens, token_lens)
        return losses
