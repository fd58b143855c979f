"""Traceable forms of the two blocks whose fast CPU kernels the exporters cannot record with
a dynamic time axis, for ``asrkit export``.

``torch.onnx.export`` (TorchScript-based) and ``torch.jit.trace`` record the operations a
forward pass runs. Two of asrkit's kernels do not survive that:

- ``Conv2dSubsampling`` (asrkit.models.subsampling) computes its first convolution as a
  matrix product over ``unfold`` patches (ONNX: "input size not accessible" on a dynamic
  time axis) and the later ones through a custom autograd function (not serialisable in
  TorchScript). Its traceable form is the plain NCHW stack, ``F.conv2d`` then ReLU, with
  the same parameters (Karita et al. 2019).
- ``RelPositionMultiHeadAttention`` (asrkit.models.rel_attention) aligns the distance
  scores with the keys by ``as_strided`` (``skew``). Its traceable form uses
  ``rel_shift``, the pad-and-reshape shift of Transformer-XL (Dai et al. 2019, appendix B),
  which computes the same (T, T) scores with ordinary tensor operations.

Both compute the same function as the eager kernels; ``asrkit export`` checks the exported
graphs against the eager model on a batch of several lengths (1e-4), and so do the tests.

    with traceable_forms(model):
        torch.onnx.export(...)        # every such block runs its traceable form here

The forms are set per instance (the instance's ``forward`` attribute) and removed on exit,
so the model and its class are unchanged afterwards.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
from torch import nn

from asrkit.models.rel_attention import RelPositionMultiHeadAttention, rel_shift
from asrkit.models.subsampling import Conv2dSubsampling


def conv2d_subsampling_nchw(self: Conv2dSubsampling, x: torch.Tensor,
                            lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv2dSubsampling.forward as a plain NCHW conv stack: x (batch, T, F), lengths
    (batch,) -> (batch, T', d_model), lengths'."""
    y = x.unsqueeze(1)  # (batch, 1, T, F)
    for module in self.conv:
        y = module(y)  # Conv2d / ReLU: (batch, channels, T_i, F_i)
    batch, channels, time, freq = y.shape
    y = y.transpose(1, 2).reshape(batch, time, channels * freq)  # (channels, freq) order
    return self.out(y), self.output_lengths(lengths)


def rel_attention_traceable(self: RelPositionMultiHeadAttention, x: torch.Tensor,
                            pos_emb: torch.Tensor,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
    """RelPositionMultiHeadAttention.forward (eval) with ``rel_shift`` instead of the
    strided ``skew``: x (batch, T, d), pos_emb (2T-1, d), mask (batch, 1 or T, T) bool."""
    batch, time, dim = x.shape
    q_u, k, v, distance_scores = self.project(x, pos_emb)  # (batch, heads, T, d_k|2T-1)
    bias = rel_shift(distance_scores)  # (batch, heads, T, T)
    if mask is not None:  # as the eager kernel: the most negative finite number
        bias = bias.masked_fill(~mask.unsqueeze(1), torch.finfo(bias.dtype).min)
    scores = torch.matmul(q_u, k.transpose(-1, -2)) + bias  # (batch, heads, T, T)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(batch, time, dim)  # (batch, T, d)
    return self.linear_out(out)


TRACEABLE_FORMS = {
    Conv2dSubsampling: conv2d_subsampling_nchw,
    RelPositionMultiHeadAttention: rel_attention_traceable,
}


@contextlib.contextmanager
def traceable_forms(model: nn.Module) -> Iterator[int]:
    """Within the block, every module of a type in ``TRACEABLE_FORMS`` runs its traceable
    form; yields how many modules were switched."""
    switched = []
    for module in model.modules():
        form = TRACEABLE_FORMS.get(type(module))
        if form is not None:
            module.forward = types.MethodType(form, module)
            switched.append(module)
    try:
        yield len(switched)
    finally:
        for module in switched:
            del module.forward
