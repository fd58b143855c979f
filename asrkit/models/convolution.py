"""The Conformer convolution module (Gulati et al. 2020, sec. 2.2, fig. 2):

    pointwise conv d -> 2d -> GLU -> depthwise conv (kernel k) -> BatchNorm or LayerNorm
    -> swish -> pointwise conv d -> d

The pre-LayerNorm, dropout and residual belong to the Conformer layer. Padded frames are
zeroed right before the depthwise convolution, the only step that mixes frames, so frames
past an utterance's end look exactly like the convolution's own zero padding: the output
for an utterance does not depend on how much padding follows it.

Note: in training mode BatchNorm statistics include the padded frames of the batch (as in
WeNet/ESPnet); in eval mode the module is exactly padding invariant.
"""

from __future__ import annotations

import torch
from torch import nn

CONV_NORMS = ("batch_norm", "layer_norm")


class ConvolutionModule(nn.Module):
    def __init__(self, d_model: int, kernel_size: int = 15, norm: str = "batch_norm",
                 activation: nn.Module | None = None) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv kernel_size must be odd (symmetric context), got {kernel_size}")
        if norm not in CONV_NORMS:
            raise ValueError(f"unknown conv norm {norm!r} (known: {', '.join(CONV_NORMS)})")
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel_size,
                                        padding=(kernel_size - 1) // 2, groups=d_model)
        self.use_layer_norm = norm == "layer_norm"
        self.norm = nn.LayerNorm(d_model) if self.use_layer_norm else nn.BatchNorm1d(d_model)
        self.activation = nn.SiLU() if activation is None else activation
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, T, d), mask (batch, T) bool, True = valid frame -> (batch, T, d)."""
        x = self.glu(self.pointwise_conv1(x.transpose(1, 2)))  # (batch, d, T)
        x = x.masked_fill(~mask.unsqueeze(1), 0.0)
        x = self.depthwise_conv(x)  # (batch, d, T)
        if self.use_layer_norm:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        x = self.pointwise_conv2(self.activation(x))
        return x.transpose(1, 2)  # (batch, T, d)
