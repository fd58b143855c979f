"""Transformer encoder (Vaswani et al. 2017; the speech variant of Karita et al. 2019):
conv2d subsampling, absolute sinusoidal positions, pre-LayerNorm self-attention and
feed-forward layers, and a final LayerNorm.

``pos_enc_layer_type: rel_pos`` replaces the absolute positions by Transformer-XL relative
ones (Dai et al. 2019): every layer's self-attention scores the distance between query and
key with learned u/v biases (asrkit.models.rel_attention, the Conformer's attention), as
ESPnet and WeNet offer for their Transformer encoders. With absolute positions a small
Transformer has to learn from the sinusoids that nearby frames matter, and on a short
budget it stays on the CTC plateau (recipes/synth/RESULTS.md); relative positions give
that bias directly.

Streaming (WeNet U2): ``chunk_size``, ``left_chunks``, ``dynamic_chunk`` and
``dynamic_left_chunks`` choose a chunk attention mask (asrkit.models.chunk_mask);
``forward_chunk`` / ``forward_chunk_by_chunk`` run the encoder one chunk at a time with
key/value caches (asrkit.models.chunk_by_chunk), the absolute positions continuing from
``offset``. The defaults (0, -1, false, false) are the offline encoder, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from asrkit.arg_types import NonNegativeInt, PositiveInt, Probability
from asrkit.models.attention import MultiHeadAttention
from asrkit.models.chunk_by_chunk import (
    ChunkByChunk,
    LayerCaches,
    bounded_cache,
    cache_of,
    cached_frames,
    subsample_chunk,
)
from asrkit.models.chunk_mask import ChunkConfig, LeftChunks
from asrkit.models.dropout import Dropout
from asrkit.models.encoder_output import EncoderOutput, check_layers
from asrkit.models.feed_forward import FeedForward
from asrkit.models.positional_encoding import PositionalEncoding, RelPositionalEncoding
from asrkit.models.rel_attention import RelPositionMultiHeadAttention
from asrkit.models.subsampling import build_input_layer

POS_ENC_LAYER_TYPES = ("abs_pos", "rel_pos")


class TransformerEncoderLayer(nn.Module):
    """x + MHSA(LN(x)), then x + FFN(LN(x)); the attention with relative positions when
    ``relative`` (then every call passes the distances' encodings ``pos_emb``)."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation: str = "relu",
                 relative: bool = False) -> None:
        super().__init__()
        self.norm_mha = nn.LayerNorm(d_model)
        self.relative = relative
        attention = RelPositionMultiHeadAttention if relative else MultiHeadAttention
        self.self_attn = attention(d_model, num_heads, attention_dropout)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, activation)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor,
                pos_emb: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, T, d), attn_mask (batch, 1 or T, T) bool, pos_emb (2T-1, d) with
        relative positions -> (batch, T, d)."""
        y = self.norm_mha(x)
        attn = (self.self_attn(y, pos_emb, attn_mask) if self.relative
                else self.self_attn(y, y, y, attn_mask))
        x = self.dropout.residual(x, attn)
        return self.dropout.residual(x, self.feed_forward(self.norm_ff(x)))

    def forward_chunk(self, x: torch.Tensor, att_cache: torch.Tensor | None,
                      pos_emb: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk (streaming, eval): x (batch, Q, d), keys/values of earlier frames or
        None, pos_emb (C+2Q-1, d) with relative positions -> (y (batch, Q, d), keys/values
        of those frames and this chunk's)."""
        y = self.norm_mha(x)
        attn, att_cache = (self.self_attn.forward_chunk(y, pos_emb, att_cache) if self.relative
                           else self.self_attn.forward_chunk(y, att_cache))
        x = self.dropout.residual(x, attn)
        return self.dropout.residual(x, self.feed_forward(self.norm_ff(x))), att_cache


class TransformerEncoder(ChunkByChunk, nn.Module):
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
        pos_enc_layer_type: Literal["abs_pos", "rel_pos"] = "abs_pos",
        chunk_size: NonNegativeInt = 0,
        left_chunks: LeftChunks = -1,
        dynamic_chunk: bool = False,
        dynamic_left_chunks: bool = False,
    ) -> None:
        """input_dim: feature size (mel bins); input_layer: conv2d4 | conv2d6 | conv2d8 |
        linear (asrkit.models.subsampling); activation of the FFN: relu | swish | gelu;
        pos_enc_layer_type: abs_pos (sinusoids added to the input) | rel_pos (relative
        positions in every layer's attention);
        chunk_size: encoder frames per attention chunk (0: full context), for static chunk
        training and as the default decoding chunk; left_chunks: chunks of left context
        (-1: all); dynamic_chunk: draw the chunk per batch in training
        (asrkit.models.chunk_mask); dynamic_left_chunks: draw the left chunks too."""
        super().__init__()
        if pos_enc_layer_type not in POS_ENC_LAYER_TYPES:
            raise ValueError(f"pos_enc_layer_type must be one of {', '.join(POS_ENC_LAYER_TYPES)}"
                             f", got {pos_enc_layer_type!r}")
        self.relative = pos_enc_layer_type == "rel_pos"
        self.output_dim = d_model
        self.chunking = ChunkConfig(chunk_size, left_chunks, dynamic_chunk, dynamic_left_chunks)
        self.input_layer = build_input_layer(input_layer, input_dim, d_model, dropout,
                                             input_channels)
        self.pos_enc = (RelPositionalEncoding if self.relative else PositionalEncoding)(
            d_model, positional_dropout)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, num_heads, ffn_dim, dropout, attention_dropout,
                                    activation, self.relative)
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
        """As ``forward``, plus the outputs of layers ``layers`` (1-based), each passed
        through the final LayerNorm (pre-norm layers leave their output unnormalised)."""
        check_layers(layers, len(self.layers), type(self).__name__)
        x, lens = self.input_layer(feats, feat_lens)  # (batch, T', d_model)
        attn_mask = self.chunking.attention_mask(lens, x.size(1), self.training, chunk_size,
                                                 left_chunks)  # (batch, 1 or T', T')
        x, pos_emb = self.pos_enc(x) if self.relative else (self.pos_enc(x), None)
        intermediates = {}
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, attn_mask, pos_emb)
            if number in layers:
                intermediates[number] = (self.final_norm(x), lens)
        return EncoderOutput(self.final_norm(x), lens, intermediates)

    def forward_chunk(self, chunk_feats: torch.Tensor, offset: int, att_cache: LayerCaches,
                      cnn_cache: LayerCaches, left_chunks: int = -1,
                      ) -> tuple[torch.Tensor, LayerCaches, LayerCaches]:
        """One chunk (eval; asrkit.models.chunk_by_chunk): chunk_feats (batch, W,
        input_dim), the input window of the chunk; offset: encoder frames before it (the
        absolute position of its first frame; unused with relative positions); att_cache: per layer, from the previous
        chunk ([] before the first); cnn_cache: unused (no convolution module), returned
        as []; left_chunks: chunks of left context to keep, each of this chunk's size ->
        (enc (batch, Q, d_model), att_cache, [])."""
        x = subsample_chunk(self.input_layer, chunk_feats)  # (batch, Q, d_model)
        if self.relative:
            x, pos_emb = self.pos_enc(x, cached_frames(att_cache))  # pos_emb: (C+2Q-1, d)
        else:
            x, pos_emb = self.pos_enc(x, offset), None
        new_att = []
        for number, layer in enumerate(self.layers):
            x, keys_values = layer.forward_chunk(x, cache_of(att_cache, number), pos_emb)
            new_att.append(bounded_cache(keys_values, left_chunks, x.size(1)))
        return self.final_norm(x), new_att, []
