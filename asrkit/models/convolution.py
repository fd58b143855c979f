"""The Conformer convolution module (Gulati et al. 2020, sec. 2.2, fig. 2):

    pointwise conv d -> 2d -> GLU -> depthwise conv (kernel k) -> BatchNorm or LayerNorm
    -> swish -> pointwise conv d -> d

The pre-LayerNorm, dropout and residual belong to the Conformer layer. Padded frames are
zeroed right before the depthwise convolution, the only step that mixes frames, so frames
past an utterance's end look exactly like the convolution's own zero padding: the output
for an utterance does not depend on how much padding follows it.

Note: in training mode BatchNorm statistics include the padded frames of the batch (as in
WeNet/ESPnet); in eval mode the module is exactly padding invariant.

Layout: the whole module works on (batch, T, channels) tensors, with no transposes. The
pointwise convolutions are linear layers on the conv weights (a kernel-1 convolution is a
matrix product over channels, and as a matmul its backward is several times faster on a
CPU), the GLU halves the last dimension, and the depthwise convolution runs on a
channels-last 2-D view (batch, channels, 1, T), which is the same memory as (batch, T,
channels), so oneDNN's channels-last depthwise kernel needs no reorder. BatchNorm
normalises the (batch * T, channels) view: the same statistics over batch and time as
BatchNorm1d over (batch, channels, T). The parameters keep their ``nn.Conv1d`` shapes, so
checkpoints are unchanged.

Causal (``causal=True``, for streaming, WeNet U2): the depthwise convolution is padded with
k-1 zero frames on the left and none on the right, so output frame t depends on frames
<= t only (any kernel size, even ones too). ``forward_chunk`` runs it one chunk at a time
with a cache of the last k-1 depthwise inputs (zeros before the first chunk: the same as
the left padding), giving the frames of the full forward. BatchNorm (eval: running
statistics) and LayerNorm are per frame, so both stream.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.linear import linear

CONV_NORMS = ("batch_norm", "layer_norm")


class ConvolutionModule(nn.Module):
    def __init__(self, d_model: int, kernel_size: int = 15, norm: str = "batch_norm",
                 activation: nn.Module | None = None, causal: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 == 0 and not causal:
            raise ValueError(f"kernel_size: must be odd (symmetric context), got {kernel_size}")
        if norm not in CONV_NORMS:
            raise ValueError(f"conv_norm: unknown conv norm {norm!r} (known: {', '.join(CONV_NORMS)})")
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.causal = causal
        self.cache_frames = kernel_size - 1 if causal else 0  # forward_chunk's cache
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel_size,
                                        padding=0 if causal else (kernel_size - 1) // 2,
                                        groups=d_model)
        self.use_layer_norm = norm == "layer_norm"
        self.norm = nn.LayerNorm(d_model) if self.use_layer_norm else nn.BatchNorm1d(d_model)
        self.activation = nn.SiLU() if activation is None else activation
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, T, d), mask (batch, T) bool, True = valid frame -> (batch, T, d)."""
        x = self._glu(x)  # (batch, T, d)
        x = torch.where(mask.unsqueeze(-1), x, 0.0)
        if self.causal:
            x = F.pad(x, (0, 0, self.cache_frames, 0))  # (batch, k-1+T, d): left zeros only
        return self._after_glu(x)

    def forward_chunk(self, x: torch.Tensor, cache: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk of a causal module: x (batch, Q, d) (all frames valid), cache
        (batch, k-1, d) or None before the first chunk -> (y (batch, Q, d), new cache)."""
        if not self.causal:
            raise ValueError("ConvolutionModule.forward_chunk needs causal=True (encoder.causal: "
                             "true); a symmetric kernel would read frames of the next chunk")
        x = self._glu(x)  # (batch, Q, d)
        if cache is None:
            cache = x.new_zeros(x.size(0), self.cache_frames, x.size(2))
        x = torch.cat([cache, x], dim=1)  # (batch, k-1+Q, d)
        new_cache = x[:, x.size(1) - self.cache_frames:]  # (batch, k-1, d)
        return self._after_glu(x), new_cache

    def _glu(self, x: torch.Tensor) -> torch.Tensor:
        """Pointwise conv d -> 2d and GLU: (batch, T, d) -> (batch, T, d)."""
        conv1 = self.pointwise_conv1
        return F.glu(linear(x, conv1.weight.squeeze(-1), conv1.bias), dim=-1)

    def _after_glu(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise conv (its own padding; a causal input comes padded), norm, activation,
        pointwise conv: (batch, T_in, d) -> (batch, T, d)."""
        batch, _, dim = x.shape
        depthwise, conv2 = self.depthwise_conv, self.pointwise_conv2
        cpu_autocast = x.is_cpu and torch.is_autocast_enabled("cpu")
        if cpu_autocast:  # see _depthwise_in_fp32
            x = x.float()
        with _depthwise_in_fp32(cpu_autocast):
            # the weight as a view, so that its gradient has the weight's own strides (with
            # unsqueeze it came back with another stride on the size-1 axis, which DDP's
            # reducer takes for a layout mismatch: a warning and a copy per step)
            weight = depthwise.weight.view(dim, 1, 1, depthwise.kernel_size[0])
            x = F.conv2d(x.transpose(1, 2).unsqueeze(2), weight, depthwise.bias,
                         padding=(0, depthwise.padding[0]),
                         groups=dim)  # (batch, d, 1, T) channels-last
        x = x.squeeze(2).transpose(1, 2)  # (batch, T, d), contiguous
        time = x.size(1)
        if self.use_layer_norm:
            x = self.norm(x)
        else:
            x = self.norm(x.reshape(batch * time, dim)).view(batch, time, dim)
        return linear(self.activation(x), conv2.weight.squeeze(-1), conv2.bias)  # (batch, T, d)


def _depthwise_in_fp32(cpu_autocast: bool) -> contextlib.AbstractContextManager:
    """The depthwise convolution outside CPU autocast: oneDNN's bf16 depthwise kernel is
    JIT-generated per input shape, and with 2 threads that took seconds to minutes per new
    (batch, T) on an AVX512-BF16 CPU, i.e. on every batch of a real run; in fp32 it costs a
    few per cent of a step. On CUDA autocast applies as usual."""
    return torch.autocast("cpu", enabled=False) if cpu_autocast else contextlib.nullcontext()
