"""Conformer encoder (Gulati et al. 2020, arXiv 2005.08100, sec. 2 and fig. 1).

Each block is macaron-style with pre-LayerNorm residuals (eq. 1):

    x = x + 1/2 FFN(x);  x = x + MHSA(x);  x = x + Conv(x);  x = x + 1/2 FFN(x);  y = LN(x)

with relative-position self-attention (Transformer-XL, learned u/v) and the convolution
module of asrkit.models.convolution. Input: conv2d subsampling; output: a final LayerNorm
(as in WeNet/ESPnet). With the defaults and 80 mel bins the encoder has the shape of the
WeNet AISHELL-1 Conformer (12 blocks, d 256, 4 heads, FFN 2048, kernel 15).

Streaming (WeNet U2): ``chunk_size``, ``left_chunks``, ``dynamic_chunk`` and
``dynamic_left_chunks`` choose a chunk attention mask (asrkit.models.chunk_mask),
``causal`` makes the convolution module causal; ``forward_chunk`` /
``forward_chunk_by_chunk`` run the encoder one chunk at a time with caches
(asrkit.models.chunk_by_chunk), which needs ``causal: true``. The defaults (0, -1, false,
false, false) are the offline encoder, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asrkit.arg_types import NonNegativeInt, PositiveInt, Probability
from asrkit.models.chunk_by_chunk import (
    ChunkByChunk,
    LayerCaches,
    bounded_cache,
    cache_of,
    cached_frames,
    subsample_chunk,
)
from asrkit.models.chunk_mask import ChunkConfig, LeftChunks
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
                 attention_dropout: float = 0.0, activation: str = "swish",
                 causal: bool = False) -> None:
        super().__init__()
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.feed_forward_macaron = FeedForward(d_model, ffn_dim, dropout, activation)
        self.norm_mha = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadAttention(d_model, num_heads, attention_dropout)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv_module = ConvolutionModule(d_model, kernel_size, conv_norm,
                                             build_activation(activation), causal)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, activation)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, T, d), pos_emb (2T-1, d), mask (batch, T) bool, attn_mask (batch, 1 or
        T, T) bool (None: ``mask`` over keys) -> (batch, T, d)."""
        attn_mask = mask.unsqueeze(1) if attn_mask is None else attn_mask
        dropout = self.dropout  # x + w * dropout(branch), one pass each (asrkit.models.dropout)
        x = dropout.residual(x, self.feed_forward_macaron(self.norm_ff_macaron(x)), 0.5)
        x = dropout.residual(x, self.self_attn(self.norm_mha(x), pos_emb, attn_mask))
        x = dropout.residual(x, self.conv_module(self.norm_conv(x), mask))
        x = dropout.residual(x, self.feed_forward(self.norm_ff(x)), 0.5)
        return self.norm_final(x)

    def forward_chunk(self, x: torch.Tensor, pos_emb: torch.Tensor,
                      att_cache: torch.Tensor | None, cnn_cache: torch.Tensor | None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One chunk (streaming, eval): x (batch, Q, d), pos_emb (C+2Q-1, d), the caches
        of the previous chunk (None before the first) -> (y (batch, Q, d), keys/values of
        all C+Q frames, the conv cache)."""
        dropout = self.dropout
        x = dropout.residual(x, self.feed_forward_macaron(self.norm_ff_macaron(x)), 0.5)
        attn, att_cache = self.self_attn.forward_chunk(self.norm_mha(x), pos_emb, att_cache)
        x = dropout.residual(x, attn)
        conv, cnn_cache = self.conv_module.forward_chunk(self.norm_conv(x), cnn_cache)
        x = dropout.residual(x, conv)
        x = dropout.residual(x, self.feed_forward(self.norm_ff(x)), 0.5)
        return self.norm_final(x), att_cache, cnn_cache


class ConformerEncoder(ChunkByChunk, nn.Module):
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
        chunk_size: NonNegativeInt = 0,
        left_chunks: LeftChunks = -1,
        dynamic_chunk: bool = False,
        dynamic_left_chunks: bool = False,
        causal: bool = False,
    ) -> None:
        """input_dim: feature size (mel bins); kernel_size: depthwise conv kernel (odd);
        conv_norm: batch_norm | layer_norm; input_layer: conv2d4 | conv2d6 | conv2d8 | linear;
        input_channels: width of the conv2d input stack (None: d_model);
        activation (FFN and conv module): swish | relu | gelu;
        chunk_size: encoder frames per attention chunk (0: full context), for static chunk
        training and as the default decoding chunk; left_chunks: chunks of left context
        (-1: all); dynamic_chunk: draw the chunk per batch in training
        (asrkit.models.chunk_mask); dynamic_left_chunks: draw the left chunks too;
        causal: causal convolution module (needed to decode chunk by chunk)."""
        super().__init__()
        self.output_dim = d_model
        self.chunking = ChunkConfig(chunk_size, left_chunks, dynamic_chunk, dynamic_left_chunks)
        self.input_layer = build_input_layer(input_layer, input_dim, d_model, dropout,
                                             input_channels)
        self.pos_enc = RelPositionalEncoding(d_model, positional_dropout)
        self.layers = nn.ModuleList(
            ConformerLayer(d_model, num_heads, ffn_dim, kernel_size, conv_norm, dropout,
                           attention_dropout, activation, causal)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                chunk_size: int | None = None,
                left_chunks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (batch, T, input_dim), feat_lens (batch,) ->
        (enc (batch, T', d_model), enc_lens (batch,)); frames past enc_lens are padding.
        chunk_size / left_chunks: the chunk mask (0: full context; None: the configured
        one, or a draw in training with dynamic_chunk; see asrkit.models.chunk_mask)."""
        out = self.forward_with_intermediates(feats, feat_lens, (), chunk_size, left_chunks)
        return out.enc, out.enc_lens

    def intermediate_dims(self) -> list[int]:
        return [self.output_dim] * len(self.layers)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames of inputs of ``lengths`` frames (the input layer's reduction)."""
        return self.input_layer.output_lengths(lengths)

    def forward_with_intermediates(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                   layers: Sequence[int] = (), chunk_size: int | None = None,
                                   left_chunks: int | None = None) -> EncoderOutput:
        """As ``forward``, plus the outputs of blocks ``layers`` (1-based), each passed
        through the final LayerNorm as the top output is (ESPnet's InterCTC does the same)."""
        check_layers(layers, len(self.layers), type(self).__name__)
        x, lens = self.input_layer(feats, feat_lens)  # (batch, T', d_model)
        attn_mask = self.chunking.attention_mask(lens, x.size(1), self.training, chunk_size,
                                                 left_chunks)  # (batch, 1 or T', T')
        x, pos_emb = self.pos_enc(x)  # pos_emb: (2T'-1, d_model)
        mask = padding_mask(lens, x.size(1))  # (batch, T')
        intermediates = {}
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, pos_emb, mask, attn_mask)
            if number in layers:
                intermediates[number] = (self.final_norm(x), lens)
        return EncoderOutput(self.final_norm(x), lens, intermediates)

    def forward_chunk(self, chunk_feats: torch.Tensor, offset: int, att_cache: LayerCaches,
                      cnn_cache: LayerCaches, left_chunks: int = -1,
                      ) -> tuple[torch.Tensor, LayerCaches, LayerCaches]:
        """One chunk (eval; asrkit.models.chunk_by_chunk): chunk_feats (batch, W,
        input_dim), the input window of the chunk; offset: encoder frames before it
        (unused: positions are relative); the caches of the previous chunk ([] before the
        first); left_chunks: chunks of left context to keep, each of this chunk's size ->
        (enc (batch, Q, d_model), att_cache, cnn_cache)."""
        x = subsample_chunk(self.input_layer, chunk_feats)  # (batch, Q, d_model)
        x, pos_emb = self.pos_enc(x, cached_frames(att_cache))  # pos_emb: (C+2Q-1, d)
        new_att, new_cnn = [], []
        for number, layer in enumerate(self.layers):
            x, keys_values, conv = layer.forward_chunk(x, pos_emb, cache_of(att_cache, number),
                                                       cache_of(cnn_cache, number))
            new_att.append(bounded_cache(keys_values, left_chunks, x.size(1)))
            new_cnn.append(conv)
        return self.final_norm(x), new_att, new_cnn
