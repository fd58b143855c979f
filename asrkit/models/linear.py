"""Linear layers whose large fp32 CPU products run in oneDNN rather than MKL on AMD CPUs.

``y = x W^T + b`` is the same function as ``F.linear``; only the kernels differ. torch's CPU
``F.linear`` computes all three products of a training step (the output, the input's
gradient ``g W`` and the weight's gradient ``g^T x``) in MKL's sgemm. On an AMD EPYC
(AVX-512) MKL reaches ~110-160 GFLOP/s on 2 cores for the Conformer's feed-forward shapes
(thousands of rows, 256 x 2048), where oneDNN's convolution kernels reach ~180-210: with the
rows as the spatial axis of a channels-last 1x1 convolution (the same memory, no copy),
oneDNN computes the output with the bias fused, and its backward-data kernel the input's
gradient. The weight's gradient stays in MKL, which is the faster of the two for it.
Measured with ``benchmarks/train_step.py`` (README, "Training step").

On Intel CPUs MKL runs these shapes at the cores' peak and the oneDNN path was as fast or
up to 16 % slower (a Xeon with AVX-512, fwd + bwd, 2 cores), so the path is only taken
where ``/proc/cpuinfo`` names an AMD CPU (``ONEDNN_LINEAR``, set at import; set it to switch).

This path is taken for fp32 CPU products of at least ``ONEDNN_MIN_ROWS`` rows and
``ONEDNN_MIN_MACS`` multiply-adds (below that MKL was as fast or faster) with more than one
torch thread (with one, torch runs a 1x1 convolution in its own slower kernel, not oneDNN;
MKL's single-thread sgemm is at the core's peak anyway). It is not taken under autocast
(bf16/fp16 products already run in oneDNN), ``torch.compile`` (inductor picks its own
kernels), tracing for export (``torch.jit.trace`` / TorchScript-based ONNX export record
``F.linear``) or functorch transforms (``torch.func``); there, and on other devices, it is
``F.linear``. Outputs and gradients agree with ``F.linear``'s to fp32 rounding; the
backward is built of differentiable ops, so double backward works too.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Below these sizes MKL's sgemm was as fast or faster (fwd + bwd, 2 cores: 128-1024 rows,
# or 3000 rows of 144 -> 100/144 columns): oneDNN is used for >= 1024 rows and >= 2^27
# multiply-adds (e.g. 1024 x 256 -> 512 and up).
ONEDNN_MIN_ROWS = 1024
ONEDNN_MIN_MACS = 1 << 27


def onednn_faster_than_mkl(cpuinfo: str) -> bool:
    """Whether the CPU a ``/proc/cpuinfo`` text describes is one where oneDNN beat MKL for
    these products (AMD: MKL is tuned for Intel's CPUs; measured on an EPYC)."""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    return vendor is not None and vendor.group(1) == "AuthenticAMD"


def _this_cpu_info() -> str:
    """/proc/cpuinfo, or "" where there is none (not Linux: then F.linear everywhere)."""
    path = Path("/proc/cpuinfo")
    return path.read_text(errors="replace") if path.exists() else ""


ONEDNN_LINEAR = onednn_faster_than_mkl(_this_cpu_info())


def _as_pixels(rows: torch.Tensor) -> torch.Tensor:
    """(M, C) contiguous -> (1, C, M, 1) channels-last: the same memory, as conv input."""
    return rows.view(1, rows.shape[0], 1, rows.shape[1]).permute(0, 3, 1, 2)


def _as_rows(pixels: torch.Tensor) -> torch.Tensor:
    """(1, C, M, 1) (channels-last, as oneDNN writes it: then a view) -> (M, C)."""
    return pixels.permute(0, 2, 3, 1).reshape(pixels.shape[2], pixels.shape[1])


class OneDnnLinear(torch.autograd.Function):
    """``F.linear`` of (M, K) rows as a 1x1 convolution: output and input gradient in
    oneDNN, weight gradient (``g^T x``) and bias gradient as in torch's own backward."""

    @staticmethod
    def forward(rows: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        kernel = weight.reshape(weight.shape[0], weight.shape[1], 1, 1)  # (N, K, 1, 1)
        return _as_rows(F.conv2d(_as_pixels(rows), kernel, bias))  # (M, N)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        rows, weight, bias = inputs
        ctx.save_for_backward(rows, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        rows, weight = ctx.saved_tensors
        grad = grad.contiguous()  # (M, N)
        grad_rows = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            kernel = weight.reshape(weight.shape[0], weight.shape[1], 1, 1)
            grad_rows = _as_rows(torch.ops.aten.convolution_backward(
                _as_pixels(grad), _as_pixels(rows), kernel, None, [1, 1], [0, 0], [1, 1],
                False, [0, 0], 1, [True, False, False])[0])
        if ctx.needs_input_grad[1]:
            grad_weight = grad.t().mm(rows)  # (N, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_rows, grad_weight, grad_bias


def uses_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``linear(x, weight)`` takes the oneDNN path (see the module docstring)."""
    if (not ONEDNN_LINEAR
            or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or torch.jit.is_tracing() or torch.compiler.is_compiling()
            or torch._C._are_functorch_transforms_active()  # torch.func.grad, vmap, ...
            or torch.is_autocast_enabled("cpu") or torch.get_num_threads() < 2
            or not torch.backends.mkldnn.is_available()
            or not torch.backends.mkldnn.enabled or x.dim() < 2 or weight.dim() != 2
            or x.shape[-1] == 0):
        return False
    rows = x.numel() // x.shape[-1]
    return rows >= ONEDNN_MIN_ROWS and x.numel() * weight.shape[0] >= ONEDNN_MIN_MACS


def linear(x: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: x (..., K), weight (N, K), bias (N,) -> (..., N)."""
    if not uses_onednn(x, weight):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1]).contiguous()  # (M, K)
    return OneDnnLinear.apply(rows, weight, bias).view(*x.shape[:-1], weight.shape[0])


class Linear(nn.Linear):
    """``nn.Linear`` computed by ``linear``: the same parameters, names and checkpoints."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
