"""Transformer encoder (Vaswani et al. 2017; the speech variant of Karita et al. 2019):
conv2d subsampling, absolute sinusoidal positions, pre-LayerNorm self-attention and
feed-forward layers, and a final LayerNorm.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asrkit.arg_types import PositiveInt, Probability
from asrkit.models.attention import MultiHeadAttention
from asrkit.models.dropout import Dropout
from asrkit.models.encoder_output import EncoderOutput, check_layers
from asrkit.models.feed_forward import FeedForward
from asrkit.models.mask import padding_mask
from asrkit.models.positional_encoding import PositionalEncoding
from asrkit.models.subsampling import build_input_layer


class TransformerEncoderLayer(nn.Module):
    """x + MHSA(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        self.norm_mha = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, attention_dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, activation)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x (batch, T, d), attn_mask (batch, 1, T) bool -> (batch, T, d)."""
        y = self.norm_mha(x)
        x = self.dropout.residual(x, self.self_attn(y, y, y, attn_mask))
        return self.dropout.residual(x, self.feed_forward(self.norm_ff(x)))


class TransformerEncoder(nn.Module):
    def __init__(
        self,
        input_dim: PositiveInt,
        d_model: PositiveInt = 256,
        num_heads: PositiveInt = 4,
        ffn_dim: PositiveInt = 2048,
        num_layers: PositiveInt = 12,
        input_layer: str = "conv2d4",
        input_channels: PositiveInt | None = None,
        dropout: Probability = 0.1,
        positional_dropout: Probability = 0.1,
        attention_dropout: Probability = 0.0,
        activation: str = "relu",
    ) -> None:
        """input_dim: feature size (mel bins); input_layer: conv2d4 | conv2d6 | conv2d8 |
        linear (asrkit.models.subsampling); activation of the FFN: relu | swish | gelu."""
        super().__init__()
        self.output_dim = d_model
        self.input_layer = build_input_layer(input_layer, input_dim, d_model, dropout,
                                             input_channels)
        self.pos_enc = PositionalEncoding(d_model, positional_dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, ffn_dim, dropout, attention_dropout,
                                    activation)
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
        """As ``forward``, plus the outputs of layers ``layers`` (1-based), each passed
        through the final LayerNorm (pre-norm layers leave their output unnormalised)."""
        check_layers(layers, len(self.layers), type(self).__name__)
        x, lens = self.input_layer(feats, feat_lens)  # (batch, T', d_model)
        x = self.pos_enc(x)
        attn_mask = padding_mask(lens, x.size(1)).unsqueeze(1)  # (batch, 1, T')
        intermediates = {}
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, attn_mask)
            if number in layers:
                intermediates[number] = (self.final_norm(x), lens)
        return EncoderOutput(self.final_norm(x), lens, intermediates)
