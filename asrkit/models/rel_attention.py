"""Relative-position multi-head self-attention of Transformer-XL (Dai et al. 2019, sec. 3.3),
as used by the Conformer (Gulati et al. 2020, sec. 2.1).

For query i and key j with relative distance i - j, the score is

    (q_i + u)·k_j / sqrt(d_k)  +  (q_i + v)·W_pos p_{i-j} / sqrt(d_k)

with learned per-head biases u (``pos_bias_u``) and v (``pos_bias_v``), and W_pos
(``linear_pos``, no bias) projecting the sinusoidal encoding p of the distance. The second
term is computed for all 2T-1 distances at once and aligned with ``rel_shift``; it is then
passed, with the padding mask folded in as -inf, as the additive float ``attn_mask`` of
``F.scaled_dot_product_attention``, which computes the first term and the softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.attention import merge_heads, split_heads


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """(..., T, 2T-1) scores over distances T-1 .. -(T-1) -> (..., T, T) scores over keys.

    Output[..., i, j] = scores[..., i, T-1-i+j], i.e. the score for distance i - j
    (the padding trick of Transformer-XL, appendix B).
    """
    *lead, time, num_pos = scores.shape
    padded = F.pad(scores, (1, 0))  # (..., T, 2T)
    padded = padded.view(*lead, num_pos + 1, time)[..., 1:, :]  # (..., 2T-1, T)
    return padded.reshape(*lead, time, num_pos)[..., : num_pos // 2 + 1]  # (..., T, T)


class RelPositionMultiHeadAttention(nn.Module):
    """Self-attention with Transformer-XL relative positions and learned u/v biases."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.dropout = dropout
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(num_heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(num_heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, T, d), pos_emb (2T-1, d) for distances T-1 .. -(T-1),
        mask (batch, 1 or T, T) bool or None -> (batch, T, d)."""
        q = split_heads(self.linear_q(x), self.num_heads)  # (batch, heads, T, d_k)
        k = split_heads(self.linear_k(x), self.num_heads)
        v = split_heads(self.linear_v(x), self.num_heads)
        p = self.linear_pos(pos_emb).view(-1, self.num_heads, self.d_k).transpose(0, 1)
        # p: (heads, 2T-1, d_k)
        q_u = q + self.pos_bias_u.unsqueeze(1).to(q.dtype)  # (batch, heads, T, d_k)
        q_v = q + self.pos_bias_v.unsqueeze(1).to(q.dtype)
        position_scores = rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))  # (b, h, T, T)
        bias = position_scores / math.sqrt(self.d_k)
        if mask is not None:
            bias = bias.masked_fill(~mask.unsqueeze(1), float("-inf"))
        out = F.scaled_dot_product_attention(
            q_u, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )  # (batch, heads, T, d_k)
        return self.linear_out(merge_heads(out))
