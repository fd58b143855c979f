"""Padding and causal masks.

Convention used by every module in asrkit.models:

- masks are ``torch.bool`` tensors and **True means keep** (a valid frame, or a key the
  query may attend to); this is also the convention of the boolean ``attn_mask`` of
  ``torch.nn.functional.scaled_dot_product_attention``;
- a *padding mask* has shape (batch, time) and is built from lengths, never inferred from
  zero-valued frames;
- an *attention mask* has shape (batch, 1 or time_q, time_k): a padding mask over keys is
  ``padding_mask(...).unsqueeze(1)``; attention modules add the head dimension themselves.
"""

from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(batch,) lengths -> (batch, max_len) bool mask, True on the first ``lengths[b]`` steps.

    ``max_len`` is passed explicitly (usually ``x.size(1)``) so that no data-dependent
    ``lengths.max()`` call is needed (keeps ``torch.compile`` graphs whole).
    """
    steps = torch.arange(max_len, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (batch, max_len)


def causal_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """(size, size) bool mask, True where query i may attend to key j (j <= i)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def decoder_self_attention_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """(batch, U) token padding mask -> (batch, U, U) causal & key-padding attention mask."""
    size = token_mask.size(1)
    return token_mask.unsqueeze(1) & causal_mask(size, token_mask.device).unsqueeze(0)
