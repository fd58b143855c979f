"""Position-wise feed-forward layer: Linear(d, ffn) -> activation -> dropout -> Linear(ffn, d).

Vaswani et al. 2017 (sec. 3.3) use ReLU; the Conformer (Gulati et al. 2020, sec. 2.3) uses
swish. Pre-LayerNorm and residual connections belong to the layer that uses it.

In training, the dropout's 1/(1-p) factor is folded into the second weight matrix
(``w_2(m * h / (1-p)) = (w_2.weight / (1-p)) (m * h) + b``), which saves a pass over the
(batch, T, ffn_dim) hidden tensor (asrkit.models.dropout).
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.models.dropout import Dropout
from asrkit.models.linear import Linear, linear

ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "gelu": nn.GELU}


def build_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation: unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float = 0.1,
                 activation: str = "relu") -> None:
        super().__init__()
        self.w_1 = Linear(d_model, ffn_dim)
        self.activation = build_activation(activation)
        self.dropout = Dropout(dropout)
        self.w_2 = Linear(ffn_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, T, d_model) -> (batch, T, d_model)."""
        hidden, scale = self.dropout.unscaled(self.activation(self.w_1(x)))  # (batch, T, ffn)
        if scale == 1.0:
            return self.w_2(hidden)
        return linear(hidden, self.w_2.weight * scale, self.w_2.bias)
