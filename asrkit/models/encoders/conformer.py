"""Conformer encoder (Gulati et al. 2020, arXiv 2005.08100, sec. 2 and fig. 1).

Each block is macaron-style with pre-LayerNorm residuals (eq. 1):

    x = x + 1/2 FFN(x);  x = x + MHSA(x);  x = x + Conv(x);  x = x + 1/2 FFN(x);  y = LN(x)

with relative-position self-attention (Transformer-XL, learned u/v) and the convolution
module of asrkit.models.convolution. Input: conv2d subsampling; output: a final LayerNorm
(as in WeNet/ESPnet). With the defaults and 80 mel bins the encoder has the shape of the
WeNet AISHELL-1 Conformer (12 blocks, d 256, 4 heads, FFN 2048, kernel 15).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asrkit.arg_types import PositiveInt, Probability
from asrkit.models.convolution import ConvolutionModule
from asrkit.models.dropout import Dropout
from asrkit.models.encoder_output import EncoderOutput, check_layers
from asrkit.models.feed_forward import FeedForward, build_activation
from asrkit.models.mask import padding_mask
from asrkit.models.positional_encoding import RelPositionalEncoding
from asrkit.models.rel_attention import RelPositionMultiHeadAttention
from asrkit.models.subsampling import build_input_layer


class ConformerLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, kernel_size: int = 15,
                 conv_norm: str = "batch_norm", dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation: str = "swish") -> None:
        super().__init__()
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.feed_forward_macaron = FeedForward(d_model, ffn_dim, dropout, activation)
        self.norm_mha = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadAttention(d_model, num_heads, attention_dropout)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv_module = ConvolutionModule(d_model, kernel_size, conv_norm,
                                             build_activation(activation))
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, activation)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (batch, T, d), pos_emb (2T-1, d), mask (batch, T) bool -> (batch, T, d)."""
        dropout = self.dropout  # x + w * dropout(branch), one pass each (asrkit.models.dropout)
        x = dropout.residual(x, self.feed_forward_macaron(self.norm_ff_macaron(x)), 0.5)
        x = dropout.residual(x, self.self_attn(self.norm_mha(x), pos_emb, mask.unsqueeze(1)))
        x = dropout.residual(x, self.conv_module(self.norm_conv(x), mask))
        x = dropout.residual(x, self.feed_forward(self.norm_ff(x)), 0.5)
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    def __init__(
        self,
        input_dim: PositiveInt,
        d_model: PositiveInt = 256,
        num_heads: PositiveInt = 4,
        ffn_dim: PositiveInt = 2048,
        num_layers: PositiveInt = 12,
        kernel_size: PositiveInt = 15,
        conv_norm: str = "batch_norm",
        input_layer: str = "conv2d4",
        input_channels: PositiveInt | None = None,
        dropout: Probability = 0.1,
        positional_dropout: Probability = 0.1,
        attention_dropout: Probability = 0.0,
        activation: str = "swish",
    ) -> None:
        """input_dim: feature size (mel bins); kernel_size: depthwise conv kernel (odd);
        conv_norm: batch_norm | layer_norm; input_layer: conv2d4 | conv2d6 | conv2d8 | linear;
        input_channels: width of the conv2d input stack (None: d_model);
        activation (FFN and conv module): swish | relu | gelu."""
        super().__init__()
        self.output_dim = d_model
        self.input_layer = build_input_layer(input_layer, input_dim, d_model, dropout,
                                             input_channels)
        self.pos_enc = RelPositionalEncoding(d_model, positional_dropout)
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, num_heads, ffn_dim, kernel_size, conv_norm, dropout,
                           attention_dropout, activation)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor,
                feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (batch, T, input_dim), feat_lens (batch,) ->
        (enc (batch, T', d_model), enc_lens (batch,)); frames past enc_lens are padding."""
        out = self.forward_with_intermediates(feats, feat_lens)
        return out.enc, out.enc_lens

    def intermediate_dims(self) -> list[int]:
        return [self.output_dim] * len(self.layers)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames of inputs of ``lengths`` frames (the input layer's reduction)."""
        return self.input_layer.output_lengths(lengths)

    def forward_with_intermediates(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                   layers: Sequence[int] = ()) -> EncoderOutput:
        """As ``forward``, plus the outputs of blocks ``layers`` (1-based), each passed
        through the final LayerNorm as the top output is (ESPnet's InterCTC does the same)."""
        check_layers(layers, len(self.layers), type(self).__name__)
        x, lens = self.input_layer(feats, feat_lens)  # (batch, T', d_model)
        x, pos_emb = self.pos_enc(x)  # pos_emb: (2T'-1, d_model)
        mask = padding_mask(lens, x.size(1))  # (batch, T')
        intermediates = {}
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, pos_emb, mask)
            if number in layers:
                intermediates[number] = (self.final_norm(x), lens)
        return EncoderOutput(self.final_norm(x), lens, intermediates)
