"""Relative-position multi-head self-attention of Transformer-XL (Dai et al. 2019, sec. 3.3),
as used by the Conformer (Gulati et al. 2020, sec. 2.1).

For query i and key j with relative distance i - j, the score is

    (q_i + u)·k_j / sqrt(d_k)  +  (q_i + v)·W_pos p_{i-j} / sqrt(d_k)

with learned per-head biases u (``pos_bias_u``) and v (``pos_bias_v``), and W_pos
(``linear_pos``, no bias) projecting the sinusoidal encoding p of the distance. The second
term is computed for all 2T-1 distances at once, (batch, heads, T, 2T-1), and aligned with
the keys by Transformer-XL's shift (appendix B); both terms are scaled through the queries.

Three kernels compute the same function (``attention_backend``, chosen per device by
default):

- ``matmul`` (the CPU default): the shift is a strided view of the distance scores
  (``skew``, no copy), the padding mask is written into it as the most negative number of
  the dtype, and one ``baddbmm`` adds the content term; softmax in fp32, then ``bmm``
  with the values. On a CPU this beats ``F.scaled_dot_product_attention``, which with a
  float mask that needs a gradient falls back to its unfused math path.
- ``flex`` (the CUDA default): ``torch.nn.attention.flex_attention`` compiled into one
  fused kernel, whose score modification adds the distance score of (i, j) read straight
  from the unshifted (batch, heads, T, 2T-1) tensor and masks padded keys: no (T, T)
  score, bias or probability tensor is materialised in memory.
  Without attention dropout only (flex has none); with it, ``sdpa`` is used.
- ``sdpa``: ``F.scaled_dot_product_attention`` with the shifted distance scores and the
  mask as its float ``attn_mask`` (on a GPU the memory-efficient kernel, not flash).

``asrkit.models.rel_attention.set_attention_backend(model, name)`` forces one for every
such layer of a model, for tests and debugging.
"""

from __future__ import annotations

import functools
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.linear import Linear, linear

log = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("auto", "matmul", "sdpa", "flex")


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """(..., T, 2T-1) scores over distances T-1 .. -(T-1) -> (..., T, T) scores over keys.

    Output[..., i, j] = scores[..., i, T-1-i+j], i.e. the score for distance i - j
    (the padding trick of Transformer-XL, appendix B). Works on any strides; ``skew`` is
    the copy-free version for contiguous input."""
    *lead, time, num_pos = scores.shape
    padded = F.pad(scores, (1, 0))  # (..., T, 2T)
    padded = padded.view(*lead, num_pos + 1, time)[..., 1:, :]  # (..., 2T-1, T)
    return padded.reshape(*lead, time, num_pos)[..., : num_pos // 2 + 1]  # (..., T, T)


def skew(scores: torch.Tensor) -> torch.Tensor:
    """``rel_shift`` as a view of a contiguous (..., T, 2T-1) tensor, no copy: element
    [i, T-1-i+j] lies at flat offset T-1 + i·(2T-2) + j of each (T, 2T-1) block, so the
    block's elements from T-1 on, read as rows of 2T-2, hold the result in their first T
    columns. The (T, T) view has distinct elements, so its backward is an ordinary copy.
    (Only views with sizes, no ``storage_offset``: torch.compile traces it whole.)"""
    if not scores.is_contiguous():
        raise ValueError("skew needs a contiguous (..., T, 2T-1) tensor")
    time, num_pos = scores.shape[-2:]
    if num_pos != 2 * time - 1:
        raise ValueError(f"skew: expected 2T-1 = {2 * time - 1} distances, got {num_pos}")
    if time == 1:
        return scores
    flat = scores.flatten(-2).narrow(-1, time - 1, time * (2 * time - 2))
    return flat.unflatten(-1, (time, 2 * time - 2))[..., :time]


_FLEX_FAILURE: list[str] = []  # the error that made the flex backend fall back, once


def _flex_failed(error: Exception) -> None:
    if not _FLEX_FAILURE:
        _FLEX_FAILURE.append(f"{type(error).__name__}: {error}")
        log.warning("flex_attention failed (%s); relative-position attention falls back to "
                    "scaled_dot_product_attention with a float bias", _FLEX_FAILURE[0][:300])


def _default_backend(device: torch.device, dropout_active: bool) -> str:
    if device.type != "cuda":
        return "matmul"
    return "sdpa" if dropout_active or _FLEX_FAILURE else "flex"


class RelPositionMultiHeadAttention(nn.Module):
    """Self-attention with Transformer-XL relative positions and learned u/v biases."""

    attention_backend = "auto"  # see the module docstring; set_attention_backend sets it

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads: d_model {d_model} is not divisible by num_heads "
                             f"{num_heads}")
        self.num_heads = num_heads
        self.d_k = d_model // num_heads
        self.dropout = dropout
        self.linear_q = Linear(d_model, d_model)
        self.linear_k = Linear(d_model, d_model)
        self.linear_v = Linear(d_model, d_model)
        self.linear_out = Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(num_heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(num_heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def backend(self, device: torch.device) -> str:
        """The kernel this layer uses on ``device`` now (resolving ``auto``)."""
        dropout_active = self.training and self.dropout > 0.0
        name = self.attention_backend
        if name == "auto":
            return _default_backend(device, dropout_active)
        if name == "flex" and dropout_active:
            return "sdpa"
        return name

    def project(self, x: torch.Tensor, pos_emb: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> q_u, k, v (batch, heads, T, d_k) and the unshifted distance scores
        (batch, heads, T, 2T-1), both terms already scaled by 1/sqrt(d_k)."""
        batch, time, _ = x.shape
        heads, d_k = self.num_heads, self.d_k
        scale = 1.0 / math.sqrt(d_k)
        weight = torch.cat([self.linear_q.weight, self.linear_k.weight, self.linear_v.weight])
        bias = torch.cat([self.linear_q.bias, self.linear_k.bias, self.linear_v.bias])
        qkv = linear(x, weight, bias).view(batch, time, 3, heads, d_k)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous().unbind(0)  # (batch, heads, T, d_k)
        u = self.pos_bias_u.unsqueeze(1).to(q.dtype)  # (heads, 1, d_k)
        v_bias = self.pos_bias_v.unsqueeze(1).to(q.dtype)
        q_u = torch.add(u * scale, q, alpha=scale)  # (q + u) / sqrt(d_k)
        q_v = torch.add(v_bias * scale, q, alpha=scale)
        p = self.linear_pos(pos_emb).view(-1, heads, d_k).permute(1, 2, 0)  # (heads, d_k, 2T-1)
        return q_u, k, v, torch.matmul(q_v, p)  # distances: (batch, heads, T, 2T-1)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, T, d), pos_emb (2T-1, d) for distances T-1 .. -(T-1),
        mask (batch, 1 or T, T) bool or None -> (batch, T, d)."""
        batch, time, dim = x.shape
        q_u, k, v, distance_scores = self.project(x, pos_emb)
        backend = self.backend(x.device)
        out_scale = 1.0
        if backend == "flex":
            try:
                out = flex_rel_attention(q_u, k, v, distance_scores, mask)
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 (no Triton, a compile error): warn once, use SDPA
                _flex_failed(error)
                backend = "sdpa"
        if backend == "sdpa":
            bias = skew(distance_scores)
            if mask is not None:
                bias = bias.masked_fill(~mask.unsqueeze(1), float("-inf"))
            out = F.scaled_dot_product_attention(
                q_u, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0,
                scale=1.0)
        elif backend == "matmul":
            out, out_scale = self._matmul_attention(q_u, k, v, distance_scores, mask)
        elif backend != "flex":
            raise ValueError(f"attention_backend: unknown {backend!r} "
                             f"(known: {', '.join(ATTENTION_BACKENDS)})")
        out = out.transpose(1, 2).reshape(batch, time, dim)  # (batch, T, d)
        if out_scale == 1.0:
            return self.linear_out(out)
        return linear(out, self.linear_out.weight * out_scale, self.linear_out.bias)

    def forward_chunk(self, x: torch.Tensor, pos_emb: torch.Tensor,
                      cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention of one chunk over a key/value cache and itself (streaming, eval):
        x (batch, Q, d); pos_emb (K+Q-1, d) for distances K-1 .. -(Q-1), K = C + Q keys;
        cache (batch, heads, C, 2 d_k) of earlier keys and values, or None ->
        (y (batch, Q, d), the keys and values of all K frames (batch, heads, K, 2 d_k)).
        Every key is attended to; the caller bounds the cache to the left context. The
        scores are the full forward's: query i is frame C + i and the score of key j reads
        distance C + i - j, at index Q-1-i+j of the distance scores."""
        batch, time, dim = x.shape
        q_u, k, v, distance_scores = self.project(x, pos_emb)  # (batch, heads, Q, d_k|K+Q-1)
        if cache is not None:
            k = torch.cat([cache[..., : self.d_k], k], dim=2)  # (batch, heads, K, d_k)
            v = torch.cat([cache[..., self.d_k:], v], dim=2)
        keys = k.size(2)
        steps = torch.arange(keys, device=x.device)
        index = time - 1 - torch.arange(time, device=x.device).unsqueeze(1) + steps  # (Q, K)
        bias = distance_scores.gather(-1, index.expand(batch, self.num_heads, time, keys))
        scores = torch.matmul(q_u, k.transpose(-1, -2)) + bias  # (batch, heads, Q, K)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, time, dim)  # (batch, Q, d)
        return self.linear_out(out), torch.cat([k, v], dim=-1)

    def _matmul_attention(self, q_u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          distance_scores: torch.Tensor, mask: torch.Tensor | None,
                          ) -> tuple[torch.Tensor, float]:
        """-> (batch, heads, T, d_k) and the attention dropout's scale (for linear_out)."""
        from asrkit.models.dropout import dropout_unscaled

        batch, heads, time, d_k = q_u.shape
        bias = skew(distance_scores)  # (batch, heads, T, T), a view
        if mask is not None:  # finite: a padded row of a zero-length utterance stays finite
            bias = bias.masked_fill(~mask.unsqueeze(1), torch.finfo(bias.dtype).min)
        scores = torch.baddbmm(bias.reshape(batch * heads, time, time),
                               q_u.reshape(batch * heads, time, d_k),
                               k.reshape(batch * heads, time, d_k).transpose(1, 2))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        probs, scale = dropout_unscaled(probs, self.dropout, self.training)
        out = torch.bmm(probs, v.reshape(batch * heads, time, d_k))
        return out.view(batch, heads, time, d_k), scale


@functools.cache
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=True)


def flex_rel_attention(q_u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       distance_scores: torch.Tensor, mask: torch.Tensor | None,
                       compiled: bool | None = None) -> torch.Tensor:
    """Relative-position attention through ``flex_attention``: q_u, k, v (batch, heads, T,
    d_k), distance_scores (batch, heads, T, 2T-1) already scaled, mask (batch, 1 or T, T)
    bool or None -> (batch, heads, T, d_k). ``compiled`` (default: on CUDA) uses the fused
    kernel; uncompiled, torch runs its reference implementation (forward only on a CPU),
    which is how the CPU tests check the score modification."""
    from torch.nn.attention.flex_attention import flex_attention

    score_mod = rel_position_score_mod(distance_scores, mask)
    if compiled is None:
        compiled = q_u.device.type == "cuda"
    attend = _compiled_flex_attention() if compiled else flex_attention
    return attend(q_u, k, v, score_mod=score_mod, scale=1.0)


def rel_position_score_mod(distance_scores: torch.Tensor, mask: torch.Tensor | None):
    """flex_attention's score modification: content score + distance score of (i, j), and
    -inf for a key the mask excludes. Also valid on broadcast index tensors (the tests
    evaluate it on a full index grid to check its gradient on a CPU)."""
    time = distance_scores.size(-2)
    rows_per_mask = 0 if mask is None else mask.size(1)

    def score_mod(score, b, h, i, j):
        score = score + distance_scores[b, h, i, time - 1 - i + j]
        if mask is None:
            return score
        allowed = mask[b, i if rows_per_mask > 1 else 0, j]
        return torch.where(allowed, score, float("-inf"))

    return score_mod


def set_attention_backend(model: nn.Module, name: str) -> int:
    """Set ``attention_backend`` of every RelPositionMultiHeadAttention in ``model``;
    returns how many layers were set."""
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"attention_backend: unknown {name!r} "
                         f"(known: {', '.join(ATTENTION_BACKENDS)})")
    layers = [m for m in model.modules() if isinstance(m, RelPositionMultiHeadAttention)]
    for layer in layers:
        layer.attention_backend = name
    return len(layers)
