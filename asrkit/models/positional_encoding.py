"""Sinusoidal positional encodings.

- ``PositionalEncoding``: absolute sinusoidal encoding of Vaswani et al. 2017 (sec. 3.5),
  added to the input after scaling it by sqrt(d_model).
- ``RelPositionalEncoding``: the relative sinusoidal encoding of Transformer-XL
  (Dai et al. 2019, sec. 3.3) used by the Conformer (Gulati et al. 2020): the input is only
  scaled, and the encodings of the relative distances T-1, T-2, ..., -(T-1) are returned
  separately for ``RelPositionMultiHeadAttention``.

Encodings are computed from the positions on the fly (no table and no maximum length), so
an utterance gets the same encodings whatever the length of the batch it is padded into.
The sqrt(d_model) scale and the dropout's 1/(1-p) are applied as one multiplication
(asrkit.models.dropout).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asrkit.models.dropout import Dropout


def sinusoid(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions (any sign) -> (N, dim) encodings, sin on even and cos on odd channels."""
    if dim % 2:
        raise ValueError(f"sinusoidal encodings need an even dimension, got {dim}")
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
        * (-math.log(10000.0) / dim)
    )  # (dim/2,)
    angles = positions.to(torch.float32).unsqueeze(1) * inv_freq  # (N, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # (N, dim)


class PositionalEncoding(nn.Module):
    """x * sqrt(d) + PE(offset .. offset+T-1), then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, time, d_model) -> (batch, time, d_model). ``positions`` (batch, time): each
        element's own position (a prefix tree's node depths) instead of offset, offset+1, ..."""
        if positions is None:
            positions = torch.arange(offset, offset + x.size(1), device=x.device)
            pe = sinusoid(positions, self.d_model).to(x.dtype)  # (time, d_model)
        else:
            pe = sinusoid(positions.flatten(), self.d_model).to(x.dtype).view_as(x)
        return self.dropout(torch.add(pe, x, alpha=self.scale))


class RelPositionalEncoding(nn.Module):
    """Scales x by sqrt(d) and returns the encodings of relative distances T-1 .. -(T-1)."""

    def __init__(self, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, cache_frames: int = 0,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, T, d) -> (x (batch, T, d), pos_emb (2T-1, d)); pos_emb[k] encodes T-1-k.
        With ``cache_frames`` C (a streaming chunk whose keys include C cached frames):
        pos_emb (C+2T-1, d) for distances C+T-1 .. -(T-1)."""
        length = x.size(1)
        positions = torch.arange(cache_frames + length - 1, -length, -1,
                                 device=x.device)  # (C+2T-1,)
        pos_emb = sinusoid(positions, self.d_model).to(x.dtype)  # (2T-1, d)
        kept, scale = self.dropout.unscaled(x)
        return kept * (self.scale * scale), self.dropout(pos_emb)
