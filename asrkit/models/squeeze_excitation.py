"""Squeeze-and-excitation over a whole utterance (Hu et al. 2018; ContextNet, Han et al.
2020, arXiv 2005.03191, sec. 2.2.1, eq. 1):

    theta(x) = sigmoid(W_2 act(W_1 mean_t(x) + b_1) + b_2);   SE(x)_t = theta(x) * x_t

The mean runs over the valid frames only (the mask is explicit), so an utterance gets the
same gates alone or padded in a batch. Channels first: (batch, channels, time), as in the
convolutions around it.
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.models.feed_forward import build_activation


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 8, activation: str = "swish") -> None:
        """reduction: the bottleneck is channels // reduction wide (at least 1)."""
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.activation = build_activation(activation)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, C, T), mask (batch, T) bool, True = valid frame -> (batch, C, T)."""
        valid = mask.unsqueeze(1)  # (batch, 1, T)
        total = x.masked_fill(~valid, 0.0).sum(-1)  # (batch, C)
        mean = total / valid.sum(-1).clamp(min=1).to(x.dtype)  # (batch, C)
        gate = torch.sigmoid(self.fc2(self.activation(self.fc1(mean))))  # (batch, C)
        return x * gate.unsqueeze(-1)
