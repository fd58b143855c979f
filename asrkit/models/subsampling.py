"""Encoder input layers: 2-D convolutional subsampling (4x, 6x, 8x) and a plain linear layer.

Conv2d subsampling follows ESPnet/WeNet (Karita et al. 2019): strided 3x3 convolutions
(a 5x5 stride-3 one for 6x) with ``d_model`` channels (or ``channels``, when given: a
narrower stack is much cheaper, as the convolutions dominate a small model's FLOPs) and
ReLU over (time, mel), then a linear layer from channels x remaining mel bins to ``d_model``. No padding is used on the
time axis, so a valid output frame only sees valid input frames; ``output_lengths`` gives
the number of valid output frames for each input length.

Each layer maps ``(x (batch, T, input_dim), lengths (batch,))`` to
``(y (batch, T', d_model), lengths' (batch,))`` and reports its ``factor``. Pick one by name
with ``build_input_layer`` (names: ``conv2d4``, ``conv2d6``, ``conv2d8``, ``linear``).

The conv stack runs channels-last, (batch, T, freq, channels) in memory, which is what
oneDNN's convolutions are fastest on: the first layer (one input channel) is a matrix
product of the k x k patches with the kernel, which writes its output in that layout
directly; the later ones are ``F.conv2d`` on channels-last tensors, except that on a CPU
their fp32 weight gradient is computed from a contiguous (channels-first) copy
(``ChannelsLastConv2d``), for which oneDNN's weight-gradient kernel is 2-3x faster; the
copy is made in cache-sized blocks (``channels_first_copy``), 4-5x faster than torch's.
The output projection reads the (freq, channels) features in that order, through a
permuted view of its weight, so parameters and checkpoints keep the (channels, freq)
order of the usual NCHW formulation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.linear import Linear, linear

# (kernel, stride) of each conv layer along time and frequency, per subsampling factor.
CONV_LAYERS = {
    4: [(3, 2), (3, 2)],
    6: [(3, 2), (5, 3)],
    8: [(3, 2), (3, 2), (3, 2)],
}


def conv_output_length(size: int | torch.Tensor, layers: list[tuple[int, int]]):
    """Frames (or bins) left after a stack of unpadded convolutions given as (kernel, stride)."""
    for kernel, stride in layers:
        size = (size - kernel) // stride + 1
    return size


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Input frames one output frame of a stack of unpadded convolutions reads: output
    frame n reads input frames n*factor .. n*factor + receptive_field - 1."""
    field, stride = 1, 1
    for kernel, layer_stride in layers:
        field += (kernel - 1) * stride
        stride *= layer_stride
    return field


class Conv2dSubsampling(nn.Module):
    """Strided Conv2d stack + linear projection; reduces the frame rate by ``factor``."""

    def __init__(self, input_dim: int, d_model: int, factor: int = 4,
                 channels: int | None = None) -> None:
        super().__init__()
        channels = channels or d_model
        if factor not in CONV_LAYERS:
            raise ValueError(f"conv2d subsampling factor must be one of {sorted(CONV_LAYERS)}, "
                             f"got {factor}")
        self.factor = factor
        self.layers = CONV_LAYERS[factor]
        convs: list[nn.Module] = []
        in_channels = 1
        for kernel, stride in self.layers:
            convs += [nn.Conv2d(in_channels, channels, kernel, stride), nn.ReLU()]
            in_channels = channels
        self.conv = nn.Sequential(*convs)
        freq = conv_output_length(input_dim, self.layers)
        if freq < 1:
            raise ValueError(f"input_dim {input_dim} is too small for conv2d{factor} subsampling")
        self.out = Linear(channels * freq, d_model)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_length(lengths, self.layers).clamp(min=0)

    @property
    def right_context(self) -> int:
        """Input frames after an output frame's first one that it reads (6 for conv2d4)."""
        return receptive_field(self.layers) - 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.size(1) < receptive_field(self.layers):  # as ESPnet's TooShortUttError
            raise ValueError(f"input of {x.size(1)} frames is shorter than the "
                             f"{receptive_field(self.layers)} that conv2d{self.factor} "
                             f"subsampling needs for one output frame")
        convs = [m for m in self.conv if isinstance(m, nn.Conv2d)]
        first = convs[0]
        (kernel, stride), channels = self.layers[0], first.out_channels
        patches = x.unfold(1, kernel, stride).unfold(2, kernel, stride)  # (b, T1, F1, k, k)
        batch, time, freq = patches.shape[:3]
        # patches @ W^T as one matmul with the bias as the weight of a constant-1 column
        # (no separate bias pass or bias-gradient sum), and W^T a contiguous (k*k+1, C)
        # matrix: its gradient is then patches^T @ grad, several times faster in MKL than
        # the grad^T @ patches that F.linear's backward computes for a 9-column input
        ones = patches.new_ones(batch, time, freq, 1)
        patches = torch.cat([patches.reshape(batch, time, freq, kernel * kernel), ones], dim=-1)
        weight_t = torch.cat([first.weight.view(channels, -1).t(), first.bias.unsqueeze(0)])
        x = torch.mm(patches.view(-1, kernel * kernel + 1), weight_t).relu_()  # (rows, C)
        x = x.view(batch, time, freq, channels).permute(0, 3, 1, 2)  # channels-last memory
        for conv in convs[1:]:
            x = F.relu(channels_last_conv2d(x, conv.weight, conv.bias, conv.stride[0]))
        batch, channels, time, freq = x.shape
        x = x.permute(0, 2, 3, 1).reshape(batch, time, freq * channels)  # a view
        weight = self.out.weight.view(-1, channels, freq).transpose(1, 2).reshape(-1, freq * channels)
        return linear(x, weight, self.out.bias), self.output_lengths(lengths)  # (b, T', d)


class ChannelsLastConv2d(torch.autograd.Function):
    """``F.conv2d`` (no padding) of a channels-last input whose fp32 weight gradient is
    computed on a channels-first copy (2-3x faster in oneDNN on a CPU; in bf16 the
    channels-last kernel is the faster one); the same function and gradients. Under
    autocast the convolution runs in the autocast dtype, as ``F.conv2d`` would, except a
    bf16 one whose output is one frequency bin wide: torch 2.11's CPU kernel returns wrong
    values there (seen on AMX; e.g. conv2d8 on 15-22 mel bins), so its forward runs in fp32
    (its backward, correct in bf16, does not)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: int) -> torch.Tensor:
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            if dtype == torch.bfloat16 and (x.size(3) - weight.size(3)) // stride == 0:
                out = F.conv2d(x.float(), weight.float(),
                               None if bias is None else bias.float(), stride).to(dtype)
            else:
                out = F.conv2d(x, weight, bias, stride)
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.has_bias = stride, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.to(x.dtype)
        args = ([ctx.stride] * 2, [0, 0], [1, 1], False, [0, 0], 1)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad.contiguous(memory_format=torch.channels_last), x, weight, None, *args,
                [True, False, False])[0]
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            if x.dtype == torch.float32:  # oneDNN's fp32 weight gradient: channels-first
                grad, x = channels_first_copy(grad), channels_first_copy(x)
                weight = weight.contiguous()
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad, x, weight, [weight.size(0)], *args,
                [False, ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]])
        return grad_x, grad_w, grad_b, None


# elements of one block of a channels-last -> channels-first copy: (positions, channels)
# blocks of about 256 KiB stay in cache while they are transposed
COPY_BLOCK = 2**16


def channels_first_copy(x: torch.Tensor) -> torch.Tensor:
    """``x.contiguous()`` of a (batch, C, H, W) channels-last tensor, copied in blocks of
    positions: torch's copy of the whole permuted tensor at once runs 4-5x slower on a CPU
    (measured on 95 MB of a front-end activation: 94 ms against 20 ms on an Intel Xeon).
    Under ``torch.compile`` it is ``x.contiguous()``."""
    if (not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous()
            or torch.compiler.is_compiling()):  # compiled: the copy is inductor's (and a
        return x.contiguous()                  # loop over the length would recompile)
    batch, channels, height, width = x.shape
    rows = x.permute(0, 2, 3, 1).view(batch, height * width, channels)
    out = x.new_empty(batch, channels, height * width)
    step = max(1, COPY_BLOCK // channels)
    for start in range(0, height * width, step):
        out[:, :, start:start + step].copy_(rows[:, start:start + step].transpose(1, 2))
    return out.view(batch, channels, height, width)


def channels_last_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         stride: int) -> torch.Tensor:
    """Unpadded strided conv2d of a channels-last (batch, C, H, W) tensor; channels-last out."""
    if x.device.type == "cpu":
        return ChannelsLastConv2d.apply(x, weight, bias, stride)
    return F.conv2d(x, weight, bias, stride)


class LinearInput(nn.Module):
    """No subsampling: Linear -> LayerNorm -> Dropout (WeNet's ``linear`` input layer)."""

    factor = 1
    right_context = 0

    def __init__(self, input_dim: int, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.out = nn.Sequential(
            nn.Linear(input_dim, d_model), nn.LayerNorm(d_model), nn.Dropout(dropout)
        )

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out(x), lengths  # (batch, T, d_model)


INPUT_LAYERS = ("conv2d4", "conv2d6", "conv2d8", "linear")


def build_input_layer(name: str, input_dim: int, d_model: int, dropout: float = 0.1,
                      channels: int | None = None) -> nn.Module:
    """The input layer called ``name`` (one of ``INPUT_LAYERS``); ``channels`` sets the conv
    stack's width (None: ``d_model``) and is ignored by ``linear``."""
    if name not in INPUT_LAYERS:
        raise ValueError(f"input_layer: unknown input layer {name!r} (known: {', '.join(INPUT_LAYERS)})")
    if name == "linear":
        return LinearInput(input_dim, d_model, dropout)
    return Conv2dSubsampling(input_dim, d_model, int(name.removeprefix("conv2d")), channels)
