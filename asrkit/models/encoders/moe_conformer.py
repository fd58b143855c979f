"""MoE-Conformer encoder: the multi-path encoder of 3M (You et al. 2022, arXiv 2204.03178).

A Conformer (asrkit.models.encoders.conformer) whose feed-forward modules become
Mixture-of-Experts layers (asrkit.models.moe). By default only the second (post-conv)
FFN of every block does, the 3M placement; ``moe_ffns`` (first | second) and
``moe_layers`` (1-based block numbers, null = all) choose others.

Router input: the FFN's input, or, with ``embedding_layers > 0``, its concatenation with a
shared embedding (3M, after SpeechMoE2): a small Conformer of ``embedding_layers`` blocks of
width ``embedding_dim`` on the subsampled input, whose output feeds the router of every MoE
layer. With ``embedding_ctc_weight > 0`` it gets a CTC head and loss of its own
(``loss_ctc_embedding``, added to the model loss with that weight).

Balance losses (asrkit.models.moe_losses) are averaged over the MoE layers and added with
``sparsity_loss_weight`` and ``importance_loss_weight`` (SpeechMoE's; 0.15/0.15, as 3M, by
default) and ``switch_loss_weight`` (Switch's alpha, 0.01 there; 0 by default); all three
are always logged with the per-expert loads.

    encoder=moe_conformer encoder.num_experts=8 encoder.top_k=1

Streaming: the Conformer's ``chunk_size``, ``left_chunks``, ``dynamic_chunk``,
``dynamic_left_chunks`` and ``causal`` (asrkit.models.encoders.conformer), for the shared
embedding's blocks too; routing is per frame, so ``forward_chunk`` routes each chunk's
frames as the full forward does (the caches list the embedding's blocks first).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from asrkit.arg_types import NonNegativeFloat, NonNegativeInt, PositiveInt, Probability
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
from asrkit.models.ctc import CTC
from asrkit.models.dropout import Dropout
from asrkit.models.encoder_output import AuxCTC, EncoderOutput, check_layers
from asrkit.models.encoders.conformer import ConformerLayer
from asrkit.models.feed_forward import FeedForward, build_activation
from asrkit.models.mask import padding_mask
from asrkit.models.moe import MoEFeedForward, Routing
from asrkit.models.moe_losses import balance_losses
from asrkit.models.positional_encoding import RelPositionalEncoding
from asrkit.models.rel_attention import RelPositionMultiHeadAttention
from asrkit.models.subsampling import build_input_layer

MOE_FFNS = ("first", "second")


class MoEConformerLayer(nn.Module):
    """A Conformer block (same parameter names as ConformerLayer) in which the first and/or
    second FFN is a MoEFeedForward."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, kernel_size: int,
                 conv_norm: str, dropout: float, attention_dropout: float, activation: str,
                 moe_ffns: Sequence[str], num_experts: int, top_k: int, expert_ffn_dim: int,
                 router_extra_dim: int, causal: bool = False) -> None:
        super().__init__()

        def ffn(which: str) -> nn.Module:
            if which in moe_ffns:
                return MoEFeedForward(d_model, expert_ffn_dim, num_experts, top_k, dropout,
                                      activation, router_extra_dim)
            return FeedForward(d_model, ffn_dim, dropout, activation)

        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.feed_forward_macaron = ffn("first")
        self.norm_mha = nn.LayerNorm(d_model)
        self.self_attn = RelPositionMultiHeadAttention(d_model, num_heads, attention_dropout)
        self.norm_conv = nn.LayerNorm(d_model)
        self.conv_module = ConvolutionModule(d_model, kernel_size, conv_norm,
                                             build_activation(activation), causal)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = ffn("second")
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    @staticmethod
    def _ffn(module: nn.Module, x: torch.Tensor, mask: torch.Tensor,
             router_extra: torch.Tensor | None, routings: list[Routing]) -> torch.Tensor:
        if isinstance(module, MoEFeedForward):
            y, routing = module(x, mask, router_extra)
            routings.append(routing)
            return y
        return module(x)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor,
                router_extra: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[Routing]]:
        """x (batch, T, d), pos_emb (2T-1, d), mask (batch, T) bool, router_extra
        (batch, T, e) or None, attn_mask (batch, 1 or T, T) (None: ``mask`` over keys)
        -> (y (batch, T, d), the routing of each MoE FFN)."""
        attn_mask = mask.unsqueeze(1) if attn_mask is None else attn_mask
        routings: list[Routing] = []
        ff = self._ffn(self.feed_forward_macaron, self.norm_ff_macaron(x), mask, router_extra,
                       routings)
        x = self.dropout.residual(x, ff, 0.5)
        x = self.dropout.residual(x, self.self_attn(self.norm_mha(x), pos_emb, attn_mask))
        x = self.dropout.residual(x, self.conv_module(self.norm_conv(x), mask))
        ff = self._ffn(self.feed_forward, self.norm_ff(x), mask, router_extra, routings)
        x = self.dropout.residual(x, ff, 0.5)
        return self.norm_final(x), routings

    def forward_chunk(self, x: torch.Tensor, pos_emb: torch.Tensor,
                      att_cache: torch.Tensor | None, cnn_cache: torch.Tensor | None,
                      router_extra: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One chunk (streaming, eval), as ConformerLayer.forward_chunk; router_extra
        (batch, Q, e) or None."""
        mask = x.new_ones(x.shape[:2], dtype=torch.bool)  # (batch, Q): every frame valid
        routings: list[Routing] = []
        ff = self._ffn(self.feed_forward_macaron, self.norm_ff_macaron(x), mask, router_extra,
                       routings)
        x = self.dropout.residual(x, ff, 0.5)
        attn, att_cache = self.self_attn.forward_chunk(self.norm_mha(x), pos_emb, att_cache)
        x = self.dropout.residual(x, attn)
        conv, cnn_cache = self.conv_module.forward_chunk(self.norm_conv(x), cnn_cache)
        x = self.dropout.residual(x, conv)
        ff = self._ffn(self.feed_forward, self.norm_ff(x), mask, router_extra, routings)
        x = self.dropout.residual(x, ff, 0.5)
        return self.norm_final(x), att_cache, cnn_cache


class SharedEmbedding(nn.Module):
    """The router's shared embedding: Linear(d_model, dim) -> Conformer blocks -> LayerNorm."""

    def __init__(self, d_model: int, dim: int, num_layers: int, num_heads: int,
                 kernel_size: int, conv_norm: str, dropout: float, positional_dropout: float,
                 attention_dropout: float, activation: str, causal: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, dim)
        self.pos_enc = RelPositionalEncoding(dim, positional_dropout)
        self.layers = nn.ModuleList(
            ConformerLayer(dim, num_heads, 4 * dim, kernel_size, conv_norm, dropout,
                           attention_dropout, activation, causal) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (batch, T, d_model) subsampled input, mask (batch, T), attn_mask (batch, 1 or
        T, T) or None (``mask`` over keys) -> (batch, T, dim)."""
        x, pos_emb = self.pos_enc(self.proj(x))
        for layer in self.layers:
            x = layer(x, pos_emb, mask, attn_mask)
        return self.norm(x)

    def forward_chunk(self, x: torch.Tensor, att_cache: LayerCaches, cnn_cache: LayerCaches,
                      left_chunks: int) -> tuple[torch.Tensor, LayerCaches, LayerCaches]:
        """One chunk (streaming, eval): x (batch, Q, d_model), this network's caches ([]
        before the first chunk) -> ((batch, Q, dim), new caches)."""
        x, pos_emb = self.pos_enc(self.proj(x), cached_frames(att_cache))
        new_att, new_cnn = [], []
        for number, layer in enumerate(self.layers):
            x, keys_values, conv = layer.forward_chunk(x, pos_emb, cache_of(att_cache, number),
                                                       cache_of(cnn_cache, number))
            new_att.append(bounded_cache(keys_values, left_chunks, x.size(1)))
            new_cnn.append(conv)
        return self.norm(x), new_att, new_cnn


class MoEConformerEncoder(ChunkByChunk, nn.Module):
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
        num_experts: PositiveInt = 8,
        top_k: PositiveInt = 1,
        expert_ffn_dim: PositiveInt | None = None,
        moe_ffns: Sequence[str] = ("second",),
        moe_layers: Sequence[int] | None = None,
        embedding_layers: NonNegativeInt = 0,
        embedding_dim: PositiveInt | None = None,
        embedding_ctc_weight: NonNegativeFloat = 0.0,
        switch_loss_weight: NonNegativeFloat = 0.0,
        sparsity_loss_weight: NonNegativeFloat = 0.15,
        importance_loss_weight: NonNegativeFloat = 0.15,
        vocab_size: int | None = None,
        blank_id: int = 0,
        chunk_size: NonNegativeInt = 0,
        left_chunks: LeftChunks = -1,
        dynamic_chunk: bool = False,
        dynamic_left_chunks: bool = False,
        causal: bool = False,
    ) -> None:
        """The Conformer's options (asrkit.models.encoders.conformer), plus:
        num_experts, top_k: experts per MoE layer and experts per frame;
        expert_ffn_dim: hidden size of an expert (null: ffn_dim);
        moe_ffns: which FFNs of a block are MoE (first | second); moe_layers: which blocks
        (1-based; null: all); embedding_layers: blocks of the shared-embedding network
        (0: router input is the FFN input only); embedding_dim: its width (null: d_model);
        embedding_ctc_weight: weight of a CTC loss on the shared embedding (0: none);
        *_loss_weight: weights of the balance losses; vocab_size, blank_id: filled in by the
        model builder (used only by the embedding's CTC head); chunk_size, left_chunks,
        dynamic_chunk, dynamic_left_chunks, causal: streaming, as the Conformer's."""
        super().__init__()
        moe_ffns = tuple(moe_ffns)
        bad = [f for f in moe_ffns if f not in MOE_FFNS]
        if bad or not moe_ffns:
            raise ValueError(f"moe_ffns: must be a non-empty list of {MOE_FFNS}, got {moe_ffns}")
        moe_layers = range(1, num_layers + 1) if moe_layers is None else tuple(moe_layers)
        check_layers(moe_layers, num_layers, "moe_layers", what="layer")
        if not moe_layers:
            raise ValueError("moe_layers: empty: an MoE-Conformer needs an MoE layer "
                             "(use encoder=conformer for a dense one)")
        if embedding_ctc_weight > 0 and embedding_layers == 0:
            raise ValueError("embedding_ctc_weight: > 0 needs a shared embedding "
                             "(embedding_layers > 0)")
        if embedding_ctc_weight > 0 and vocab_size is None:
            raise ValueError("embedding_ctc_weight: > 0 needs vocab_size (the model builder "
                             "fills it in)")
        self.output_dim = d_model
        self.chunking = ChunkConfig(chunk_size, left_chunks, dynamic_chunk, dynamic_left_chunks)
        self.loss_weights = {"switch_weight": switch_loss_weight,
                             "sparsity_weight": sparsity_loss_weight,
                             "importance_weight": importance_loss_weight}
        self.input_layer = build_input_layer(input_layer, input_dim, d_model, dropout,
                                             input_channels)
        self.pos_enc = RelPositionalEncoding(d_model, positional_dropout)
        embedding_dim = d_model if embedding_dim is None else embedding_dim
        self.embedding = None
        if embedding_layers > 0:
            self.embedding = SharedEmbedding(d_model, embedding_dim, embedding_layers,
                                             num_heads, kernel_size, conv_norm, dropout,
                                             positional_dropout, attention_dropout, activation,
                                             causal)
        extra = embedding_dim if self.embedding is not None else 0
        self.embedding_ctc_weight = embedding_ctc_weight
        self.embedding_ctc = (CTC(embedding_dim, vocab_size, blank_id) if embedding_ctc_weight > 0
                              else None)
        expert_ffn_dim = ffn_dim if expert_ffn_dim is None else expert_ffn_dim
        self.layers = nn.ModuleList(
            MoEConformerLayer(d_model, num_heads, ffn_dim, kernel_size, conv_norm, dropout,
                              attention_dropout, activation,
                              moe_ffns if number in moe_layers else (), num_experts, top_k,
                              expert_ffn_dim, extra, causal)
            for number in range(1, num_layers + 1)
        )
        self.final_norm = nn.LayerNorm(d_model)

    def intermediate_dims(self) -> list[int]:
        return [self.output_dim] * len(self.layers)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames of inputs of ``lengths`` frames (the input layer's reduction)."""
        return self.input_layer.output_lengths(lengths)

    def training_only_modules(self) -> list[nn.Module]:
        """Modules used for training losses only (not at decoding)."""
        return [] if self.embedding_ctc is None else [self.embedding_ctc]

    def _run(self, feats: torch.Tensor, feat_lens: torch.Tensor, layers: Sequence[int],
             chunk_size: int | None = None, left_chunks: int | None = None):
        x, lens = self.input_layer(feats, feat_lens)  # (batch, T', d_model)
        attn_mask = self.chunking.attention_mask(lens, x.size(1), self.training, chunk_size,
                                                 left_chunks)  # (batch, 1 or T', T')
        mask = padding_mask(lens, x.size(1))  # (batch, T')
        embedding = (None if self.embedding is None
                     else self.embedding(x, mask, attn_mask))  # (b, T', e)
        x, pos_emb = self.pos_enc(x)  # pos_emb: (2T'-1, d_model)
        intermediates, routings = {}, []
        for number, layer in enumerate(self.layers, start=1):
            x, layer_routings = layer(x, pos_emb, mask, embedding, attn_mask)
            routings += layer_routings
            if number in layers:
                intermediates[number] = (self.final_norm(x), lens)
        return self.final_norm(x), lens, intermediates, routings, embedding

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                chunk_size: int | None = None,
                left_chunks: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (batch, T, input_dim), feat_lens (batch,) ->
        (enc (batch, T', d_model), enc_lens (batch,)); no losses (for decoding).
        chunk_size / left_chunks: the chunk mask (0: full context; None: the configured
        one, or a draw in training with dynamic_chunk; see asrkit.models.chunk_mask)."""
        enc, lens, *_ = self._run(feats, feat_lens, (), chunk_size, left_chunks)
        return enc, lens

    def forward_with_intermediates(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                                   layers: Sequence[int] = (), chunk_size: int | None = None,
                                   left_chunks: int | None = None) -> EncoderOutput:
        """As ``forward``, plus block outputs ``layers`` (1-based, through the final norm),
        the weighted balance losses (``aux_loss``), their terms and expert loads
        (``aux_terms``) and the shared embedding's CTC (``aux_ctc['embedding']``)."""
        check_layers(layers, len(self.layers), type(self).__name__)
        enc, lens, intermediates, routings, embedding = self._run(feats, feat_lens, layers,
                                                                  chunk_size, left_chunks)
        aux_loss, terms = balance_losses(routings, **self.loss_weights)
        aux_ctc = {}
        if self.embedding_ctc is not None:
            aux_ctc["embedding"] = AuxCTC(self.embedding_ctc_weight, self.embedding_ctc,
                                          embedding, lens)
        return EncoderOutput(enc, lens, intermediates, aux_loss, terms, aux_ctc)

    def forward_chunk(self, chunk_feats: torch.Tensor, offset: int, att_cache: LayerCaches,
                      cnn_cache: LayerCaches, left_chunks: int = -1,
                      ) -> tuple[torch.Tensor, LayerCaches, LayerCaches]:
        """One chunk (eval), as ConformerEncoder.forward_chunk; the caches hold the shared
        embedding's blocks first, then the MoE-Conformer's."""
        x = subsample_chunk(self.input_layer, chunk_feats)  # (batch, Q, d_model)
        split = 0 if self.embedding is None else len(self.embedding.layers)
        embedding, new_att, new_cnn = None, [], []
        if self.embedding is not None:
            embedding, new_att, new_cnn = self.embedding.forward_chunk(
                x, att_cache[:split], cnn_cache[:split], left_chunks)  # (batch, Q, e)
        att_cache, cnn_cache = att_cache[split:], cnn_cache[split:]
        x, pos_emb = self.pos_enc(x, cached_frames(att_cache))  # pos_emb: (C+2Q-1, d)
        for number, layer in enumerate(self.layers):
            x, keys_values, conv = layer.forward_chunk(x, pos_emb, cache_of(att_cache, number),
                                                       cache_of(cnn_cache, number), embedding)
            new_att.append(bounded_cache(keys_values, left_chunks, x.size(1)))
            new_cnn.append(conv)
        return self.final_norm(x), new_att, new_cnn
