"""Multi-head attention (Vaswani et al. 2017, sec. 3.2) on top of
``torch.nn.functional.scaled_dot_product_attention``, so fused kernels run where they can.

Masks follow asrkit.models.mask: bool, True = the query may attend to the key, shape
(batch, 1 or T_q, T_k); the head dimension is added here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.linear import Linear, linear


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(batch, T, heads * d_k) -> (batch, heads, T, d_k)."""
    batch, time, dim = x.shape
    return x.view(batch, time, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, T, d_k) -> (batch, T, heads * d_k)."""
    batch, heads, time, d_k = x.shape
    return x.transpose(1, 2).reshape(batch, time, heads * d_k)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q/k/v/output projections (all with bias).

    ``kv_dim`` (default ``d_model``) is the feature size of key/value inputs, so a decoder
    can attend to an encoder of another width.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0,
                 kv_dim: int | None = None) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads: d_model {d_model} is not divisible by num_heads "
                             f"{num_heads}")
        kv_dim = d_model if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.linear_q = Linear(d_model, d_model)
        self.linear_k = Linear(kv_dim, d_model)
        self.linear_v = Linear(kv_dim, d_model)
        self.linear_out = Linear(d_model, d_model)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """query (batch, T_q, d_model), key/value (batch, T_k, kv_dim),
        mask (batch, 1 or T_q, T_k) bool or None -> (batch, T_q, d_model)."""
        q = split_heads(self.linear_q(query), self.num_heads)  # (batch, heads, T_q, d_k)
        k = split_heads(self.linear_k(key), self.num_heads)  # (batch, heads, T_k, d_k)
        v = split_heads(self.linear_v(value), self.num_heads)
        attn_mask = None if mask is None else mask.unsqueeze(1)  # (batch, 1, T_q|1, T_k)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (batch, heads, T_q, d_k)
        return self.linear_out(merge_heads(out))

    def forward_paths(self, x: torch.Tensor, paths: torch.Tensor,
                      node_rows: torch.Tensor) -> torch.Tensor:
        """Causal self-attention of prefix-tree nodes along root-to-leaf paths (eval):
        x (B, N, d_model) node inputs, paths (P, L) flat node indices (b * N + node) from
        the root (anything after a path's end), node_rows (B*N,) for each node the flat
        index (p * L + position) of a place it holds on a path -> (B, N, d_model). A node
        attends to the nodes before it on its path, i.e. its ancestors; the projections run
        once per node (q, k and v as one product), the attention once per path, and each
        node's output is read from one of its places (on several paths: equal values; a
        node on no path, padding, gets the output at the place node_rows names for it)."""
        batch, nodes, dim = x.shape
        weight = torch.cat([self.linear_q.weight, self.linear_k.weight, self.linear_v.weight])
        bias = torch.cat([self.linear_q.bias, self.linear_k.bias, self.linear_v.bias])
        qkv = linear(x.reshape(batch * nodes, dim), weight, bias)  # (B*N, 3 d_model)
        along = qkv.index_select(0, paths.flatten()).view(
            *paths.shape, 3, self.num_heads, dim // self.num_heads)  # (P, L, 3, heads, d_k)
        q, k, v = along.permute(2, 0, 3, 1, 4).unbind(0)  # (P, heads, L, d_k) each
        out = merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))
        per_node = out.flatten(0, 1).index_select(0, node_rows)  # (B*N, d_model)
        return self.linear_out(per_node.view(batch, nodes, dim))

    def forward_chunk(self, x: torch.Tensor, cache: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention of one chunk over a key/value cache and itself (streaming, eval):
        x (batch, Q, d_model), cache (batch, heads, C, 2 d_k) of earlier projected keys and
        values, or None -> (y (batch, Q, d_model), keys and values of all C + Q frames
        (batch, heads, C+Q, 2 d_k)). Every key is attended to; the caller bounds the cache."""
        q = split_heads(self.linear_q(x), self.num_heads)  # (batch, heads, Q, d_k)
        k = split_heads(self.linear_k(x), self.num_heads)
        v = split_heads(self.linear_v(x), self.num_heads)
        if cache is not None:
            d_k = q.size(-1)
            k = torch.cat([cache[..., :d_k], k], dim=2)  # (batch, heads, C+Q, d_k)
            v = torch.cat([cache[..., d_k:], v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v)  # (batch, heads, Q, d_k)
        return self.linear_out(merge_heads(out)), torch.cat([k, v], dim=-1)
