"""ContextNet encoder (Han et al. 2020, arXiv 2005.03191, sec. 2.2 and table 1).

23 convolution blocks C0 .. C22. Each of C1 .. C21 has ``layers_per_block`` (5) layers of
depthwise-separable convolution (depthwise kernel ``kernel_size`` = 5, pointwise
projection) -> BatchNorm -> swish, then squeeze-and-excitation over the whole (masked)
utterance (asrkit.models.squeeze_excitation) and a residual projection (pointwise conv +
BatchNorm) added before a last swish:

    C(x) = swish(SE(f^m(x)) + P(x))

C0 and C22 have a single conv layer, SE and no residual (``residual=projection``, the
paper's block). Channels: 256·alpha (C0 .. C10), 512·alpha (C11 .. C21), 640·alpha (C22);
``alpha`` is the paper's width multiplier (0.5, 1, 2 for its S/M/L models:
10.8M/31.4M/112.7M with an RNN-T decoder). The last conv layer of
C3, C7 and C14 has stride 2 (and so has their residual projection): 8x fewer frames,
``ceil(T / 8)`` for T input frames. The input is the feature sequence itself (no
subsampling layer).

``residual=identity`` is the same network with ResNet-style shortcuts (He et al. 2016;
Goyal et al. 2017), for short training budgets:

    C(x) = SE(f^m(x)) + x        (P(x) where the width or the frame rate changes)

no activation after the sum, the last BatchNorm of each f^m zero-initialised (a block whose
shape stays starts as the identity), and C22 gets a shortcut too (a projection where it
widens). C0 keeps none: it maps the features to the first width. With the paper's block the
encoder has no identity path through its ~110 layers; on the synth corpus
(recipes/synth/RESULTS.md) it did not learn CTC in ~1,500 updates at any learning rate
tried, and overfitting 243 utterances left it at the blank-only loss, while the identity
variant fits them within 200 updates. It also drops the projections of blocks whose width
does not change (about 10 % fewer parameters).

Padded frames are zeroed right before every depthwise convolution, the only step that
mixes frames, and SE averages the valid frames only, so in eval mode an utterance's output
does not depend on the padding after it. (In training, BatchNorm statistics include padded
frames, as in the Conformer's convolution module.) Intermediate outputs (for InterCTC) are
block outputs; their width and frame rate differ from block to block.

    encoder=contextnet encoder.alpha=0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from asrkit.arg_types import PositiveFloat, PositiveInt
from asrkit.models.encoder_output import EncoderOutput, check_layers
from asrkit.models.feed_forward import build_activation
from asrkit.models.mask import padding_mask
from asrkit.models.squeeze_excitation import SqueezeExcitation

NUM_BLOCKS = 23


def block_channels(alpha: float) -> list[int]:
    """Output channels of C0 .. C22 for width multiplier ``alpha``."""
    widths = [256] * 11 + [512] * 11 + [640]
    return [max(1, round(w * alpha)) for w in widths]


class SeparableConvLayer(nn.Module):
    """Depthwise conv (kernel k, stride s) -> pointwise conv -> BatchNorm -> activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 activation: str) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd, got {kernel_size}")
        self.depthwise = nn.Conv1d(in_channels, in_channels, kernel_size, stride,
                                   padding=kernel_size // 2, groups=in_channels, bias=False)
        self.pointwise = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.norm = nn.BatchNorm1d(out_channels)
        self.activation = build_activation(activation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, C_in, T), mask (batch, T) bool -> (batch, C_out, ceil(T / stride))."""
        x = self.depthwise(x.masked_fill(~mask.unsqueeze(1), 0.0))
        return self.activation(self.norm(self.pointwise(x)))


class ContextNetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_layers: int, kernel_size: int,
                 stride: int, residual: Literal["none", "projection", "identity"],
                 se_reduction: int, activation: str) -> None:
        """residual: none; projection: swish(SE(f(x)) + P(x)) (the paper's); identity:
        SE(f(x)) + x, or + P(x) where the shapes differ, with f's last BatchNorm scale at 0."""
        super().__init__()
        if residual not in ("none", "projection", "identity"):
            raise ValueError(f"residual: must be one of projection, identity, got {residual!r}")
        self.stride = stride
        self.layers = nn.ModuleList(
            SeparableConvLayer(in_channels if i == 0 else out_channels, out_channels,
                               kernel_size, stride if i == num_layers - 1 else 1, activation)
            for i in range(num_layers))
        self.se = SqueezeExcitation(out_channels, se_reduction, activation)
        self.residual: nn.Module | None = None
        self.activation: nn.Module = nn.Identity()  # after the sum
        if residual == "identity" and in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        elif residual != "none":
            self.residual = nn.Sequential(
                nn.Conv1d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm1d(out_channels))
        if residual == "projection":
            self.activation = build_activation(activation)
        if residual == "identity":
            nn.init.zeros_(self.layers[-1].norm.weight)

    def forward(self, x: torch.Tensor,
                lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (batch, C_in, T), lens (batch,) -> (y (batch, C_out, ceil(T/s)), ceil(lens/s))."""
        out_lens = torch.div(lens + self.stride - 1, self.stride, rounding_mode="floor")
        mask = padding_mask(lens, x.size(-1))  # the input's; only the last layer strides
        h = x
        for layer in self.layers:
            h = layer(h, mask)
        h = self.se(h, padding_mask(out_lens, h.size(-1)))
        if self.residual is not None:
            h = self.activation(h + self.residual(x))
        return h, out_lens


class ContextNetEncoder(nn.Module):
    def __init__(
        self,
        input_dim: PositiveInt,
        alpha: PositiveFloat = 1.0,
        kernel_size: PositiveInt = 5,
        layers_per_block: PositiveInt = 5,
        se_reduction: PositiveInt = 8,
        strided_blocks: Sequence[int] = (3, 7, 14),
        activation: str = "swish",
        residual: Literal["projection", "identity"] = "projection",
    ) -> None:
        """input_dim: feature size (mel bins); alpha: width multiplier; kernel_size: of the
        depthwise convolutions (odd); layers_per_block: conv layers in C1 .. C21;
        se_reduction: SE bottleneck ratio; strided_blocks: blocks (0-based, C<i>) with
        stride 2; activation: swish | relu | gelu; residual: projection (the paper's
        blocks) | identity (identity shortcuts, see the module docstring)."""
        super().__init__()
        bad = [b for b in strided_blocks if not 0 <= b < NUM_BLOCKS]
        if bad:
            raise ValueError(f"strided_blocks: {bad} are outside C0..C{NUM_BLOCKS - 1}")
        channels = block_channels(alpha)
        self.output_dim = channels[-1]
        blocks = []
        in_channels = input_dim
        for i, out_channels in enumerate(channels):
            edge = i in (0, NUM_BLOCKS - 1)  # C0 and C22: one layer, no residual
            shortcut = "none" if i == 0 or (edge and residual == "projection") else residual
            blocks.append(ContextNetBlock(
                in_channels, out_channels, 1 if edge else layers_per_block, kernel_size,
                2 if i in strided_blocks else 1, shortcut, se_reduction, activation))
            in_channels = out_channels
        # named ``layers`` like every encoder's stack (activation checkpointing, tables)
        self.layers = nn.ModuleList(blocks)

    def intermediate_dims(self) -> list[int]:
        return [block.se.fc2.out_features for block in self.layers]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames of inputs of ``lengths`` frames: ceil(T / s) per strided block."""
        for block in self.layers:
            lengths = torch.div(lengths + block.stride - 1, block.stride, rounding_mode="floor")
        return lengths

    def forward(self, feats: torch.Tensor,
                feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (batch, T, input_dim), feat_lens (batch,) ->
        (enc (batch, ceil(T/8), output_dim), enc_lens (batch,))."""
        out = self.forward_with_intermediates(feats, feat_lens)
        return out.enc, out.enc_lens

    def forward_with_intermediates(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                   layers: Sequence[int] = ()) -> EncoderOutput:
        """As ``forward``, plus the outputs of blocks ``layers`` (1-based: layer 1 is C0),
        each (batch, T_l, C_l) with its own lengths."""
        check_layers(layers, len(self.layers), type(self).__name__)
        x, lens = feats.transpose(1, 2), feat_lens  # (batch, input_dim, T)
        intermediates = {}
        for number, block in enumerate(self.layers, start=1):
            x, lens = block(x, lens)
            if number in layers:
                intermediates[number] = (x.transpose(1, 2), lens)
        return EncoderOutput(x.transpose(1, 2), lens, intermediates)
