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
"""

from __future__ import annotations

import torch
from torch import nn

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
        self.out = nn.Linear(channels * freq, d_model)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_length(lengths, self.layers).clamp(min=0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (batch, channels, T', freq')
        batch, channels, time, freq = x.shape
        x = self.out(x.transpose(1, 2).reshape(batch, time, channels * freq))  # (batch, T', d)
        return x, self.output_lengths(lengths)


class LinearInput(nn.Module):
    """No subsampling: Linear -> LayerNorm -> Dropout (WeNet's ``linear`` input layer)."""

    factor = 1

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
        raise ValueError(f"unknown input layer {name!r} (known: {', '.join(INPUT_LAYERS)})")
    if name == "linear":
        return LinearInput(input_dim, d_model, dropout)
    return Conv2dSubsampling(input_dim, d_model, int(name.removeprefix("conv2d")), channels)
