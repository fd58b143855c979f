"""Dropout (Srivastava et al. 2014) with a cheap mask on the CPU, and the 1/(1-p) scale left
to the caller so that it can be folded into an operation that follows anyway.

torch's CPU dropout draws a float Bernoulli variable per element, divides the mask by 1 - p
and multiplies: three passes over the tensor, and on CPUs where MKL's generator is not used
a serial draw per element (15 % of a Conformer training step on 2 cores). Here, on the CPU,
each element gets 16 random bits (four elements per 64-bit draw of torch's generator, so
``torch.manual_seed`` and the saved RNG state reproduce it); one comparison with a
threshold writes the 0/1 mask in the tensor's own dtype, and one multiplication applies it
(vectorised, several times faster than ``torch.where`` with a bool mask). The caller
multiplies by ``scale`` where it costs nothing extra: the feed-forward layer scales its
second weight matrix, a residual branch the ``alpha`` of its addition.

The drop probability is quantised to a multiple of 2^-16 (p = 0.1 becomes
6554 / 65536 = 0.100006) and ``scale`` is 1 / (1 - that), so the expectation of the output
is exactly the input's, as with ``nn.Dropout``. On other devices (CUDA's fused dropout
kernel is already one pass), and inside ``torch.compile`` (which fuses it with its
neighbours), it is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_LEVELS = 1 << 16  # a 16-bit draw per element


def quantised_drop_probability(p: float) -> float:
    """The drop probability the CPU mask really has: ``p`` rounded to a multiple of 2^-16,
    at most 1 - 2^-16 (a p within 2^-17 of 1 would round to 1, dropping everything)."""
    return min(round(p * MASK_LEVELS), MASK_LEVELS - 1) / MASK_LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float,
              device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.bool) -> tuple[torch.Tensor, float]:
    """A mask of ``shape``, 1/True (keep) with probability 1 - p' (p' = p on a 2^-16 grid),
    and the scale 1 / (1 - p') that keeps the expectation. ``dtype``: bool, or the float
    dtype of the tensor it will multiply (written directly by the comparison)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    threshold = round(quantised_drop_probability(p) * MASK_LEVELS)  # exact: on the grid
    numel = 1
    for size in shape:
        numel *= size
    words = torch.empty((numel + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None)  # 64 uniform bits per word
    bits = words.view(torch.int16)[:numel].view(shape)  # uniform in [-32768, 32767]
    keep = torch.empty(shape, dtype=dtype, device=device)
    torch.ge(bits, threshold - MASK_LEVELS // 2, out=keep)
    return keep, MASK_LEVELS / (MASK_LEVELS - threshold)


def dropout_unscaled(x: torch.Tensor, p: float, training: bool) -> tuple[torch.Tensor, float]:
    """Dropout of ``x`` without its 1/(1-p) factor: ``(y, scale)`` with ``y * scale`` the
    dropped-out ``x``. Outside training, or with p = 0, ``(x, 1.0)``."""
    if not training or p == 0.0:
        return x, 1.0
    if x.device.type != "cpu" or torch.compiler.is_compiling():  # fused there anyway
        return F.dropout(x, p, True), 1.0
    keep, scale = keep_mask(x.shape, p, x.device, x.dtype)  # 0./1. in x's dtype
    return x * keep, scale


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask; ``unscaled(x)`` leaves the scale to the
    caller (see the module docstring). No parameters or buffers: checkpoints are unchanged."""

    def unscaled(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        return dropout_unscaled(x, self.p, self.training)

    def residual(self, x: torch.Tensor, branch: torch.Tensor,
                 weight: float = 1.0) -> torch.Tensor:
        """``x + weight * dropout(branch)`` as one masking pass and one addition."""
        y, scale = self.unscaled(branch)
        return torch.add(x, y, alpha=weight * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, scale = self.unscaled(x)
        return y if scale == 1.0 else y * scale
