"""Transformer attention decoder (Vaswani et al. 2017, sec. 3.1; pre-LayerNorm as in
ESPnet/WeNet): token embedding + absolute sinusoidal positions, layers of causal
self-attention, cross-attention over the encoder output and feed-forward, a final
LayerNorm and an output layer (optionally tied to the embedding).

Incremental decoding: ``forward_one_step`` takes the whole prefix and a cache holding,
for every layer, that layer's outputs for all but the last prefix position; it computes
only the last position and returns the extended cache. Its result equals the last row of
the full forward pass. The cache is a list of (N, U-1, d_model) tensors with the
hypotheses first, so beam search reorders it with ``[c.index_select(0, idx) for c in cache]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.arg_types import PositiveInt, Probability
from asrkit.models.attention import MultiHeadAttention
from asrkit.models.dropout import Dropout
from asrkit.models.feed_forward import FeedForward
from asrkit.models.linear import Linear
from asrkit.models.mask import causal_mask, decoder_self_attention_mask
from asrkit.models.positional_encoding import PositionalEncoding
from asrkit.models.prefix_tree import TreeBatch


class TransformerDecoderLayer(nn.Module):
    """x + SelfAttn(LN(x)), x + CrossAttn(LN(x), enc), x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ffn_dim: int, encoder_dim: int,
                 dropout: float = 0.1, attention_dropout: float = 0.0,
                 activation: str = "relu") -> None:
        super().__init__()
        self.norm_self_attn = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, attention_dropout)
        self.norm_src_attn = nn.LayerNorm(d_model)
        self.src_attn = MultiHeadAttention(d_model, num_heads, attention_dropout,
                                           kv_dim=encoder_dim)
        self.norm_ff = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, activation)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, self_mask: torch.Tensor | None, enc: torch.Tensor,
                enc_mask: torch.Tensor, cache: torch.Tensor | None = None,
                paths: TreeBatch | None = None) -> torch.Tensor:
        """x (batch, U, d), self_mask (batch, U, U) bool, enc (batch, T, encoder_dim),
        enc_mask (batch, 1, T) bool -> (batch, U, d).

        With ``cache`` (batch, U-1, d), the outputs of this layer for the first U-1 positions,
        only the last position is computed (self_mask is then (batch, 1, U)) and the result
        is ``cat(cache, new)``. With ``paths`` (and self_mask None) x holds prefix-tree
        nodes that attend along the batch's paths (MultiHeadAttention.forward_paths)."""
        y = self.norm_self_attn(x)  # keys/values: every position
        query, residual = (y, x) if cache is None else (y[:, -1:], x[:, -1:])
        if paths is not None:
            if cache is not None or self_mask is not None:
                raise ValueError("a decoder layer takes paths without a cache or self_mask")
            attended = self.self_attn.forward_paths(y, paths.sources, paths.node_rows)
        else:
            attended = self.self_attn(query, y, y, self_mask)
        h = self.dropout.residual(residual, attended)
        h = self.dropout.residual(h, self.src_attn(self.norm_src_attn(h), enc, enc, enc_mask))
        h = self.dropout.residual(h, self.feed_forward(self.norm_ff(h)))
        return h if cache is None else torch.cat([cache, h], dim=1)


class TransformerDecoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int,
        d_model: PositiveInt = 256,
        num_heads: PositiveInt = 4,
        ffn_dim: PositiveInt = 2048,
        num_layers: PositiveInt = 6,
        dropout: Probability = 0.1,
        positional_dropout: Probability = 0.1,
        attention_dropout: Probability = 0.0,
        activation: str = "relu",
        tie_weights: bool = False,
    ) -> None:
        """vocab_size and encoder_dim are filled in by the model builder; tie_weights shares
        the output layer's weight with the token embedding (the output bias stays)."""
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos_enc = PositionalEncoding(d_model, positional_dropout)
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, num_heads, ffn_dim, encoder_dim, dropout,
                                    attention_dropout, activation)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model)
        self.output_layer = Linear(d_model, vocab_size)
        if tie_weights:
            self.output_layer.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor, token_mask: torch.Tensor, enc: torch.Tensor,
                enc_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass.

        tokens (batch, U) valid ids everywhere (padding replaced by any valid id),
        token_mask (batch, U) bool, True = real token, enc (batch, T, encoder_dim),
        enc_mask (batch, T) bool -> logits (batch, U, vocab)."""
        x = self.pos_enc(self.embed(tokens))  # (batch, U, d_model)
        return self._layers(x, decoder_self_attention_mask(token_mask), enc, enc_mask)

    def forward_tree(self, trees: TreeBatch, enc: torch.Tensor,
                     enc_mask: torch.Tensor) -> torch.Tensor:
        """Teacher-forced pass over prefix trees (asrkit.models.prefix_tree), one per
        utterance: ``trees`` (its node tokens (batch, N), their depths as positions, and the
        self-attention route), enc (batch, T, encoder_dim), enc_mask (batch, T) -> logits
        (batch, N, vocab); a node's logits equal those at its position of every hypothesis
        through it."""
        x = self.pos_enc(self.embed(trees.tokens), positions=trees.depths)  # (batch, N, d)
        paths = trees if trees.attend is None else None
        return self._layers(x, trees.attend, enc, enc_mask, paths)

    def _layers(self, x: torch.Tensor, self_mask: torch.Tensor | None, enc: torch.Tensor,
                enc_mask: torch.Tensor, paths: TreeBatch | None = None) -> torch.Tensor:
        cross_mask = enc_mask.unsqueeze(1)  # (batch, 1, T)
        for layer in self.layers:
            x = layer(x, self_mask, enc, cross_mask, paths=paths)
        return self.output_layer(self.final_norm(x))

    def forward_one_step(
        self, tokens: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor,
        cache: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Log-probabilities of the token after each prefix.

        tokens (N, U) prefixes of equal length (starting with sos), enc (N, T, encoder_dim),
        enc_mask (N, T) bool, cache: None at the first step, then the returned cache ->
        (log_probs (N, vocab) for position U, new cache: num_layers x (N, U, d_model)).
        """
        length = tokens.size(1)
        x = self.pos_enc(self.embed(tokens))  # (N, U, d_model)
        self_mask = causal_mask(length, tokens.device)[-1:].unsqueeze(0)  # (1, 1, U)
        cross_mask = enc_mask.unsqueeze(1)  # (N, 1, T)
        new_cache = []
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache[i]
            if layer_cache is None:
                # No cache yet: compute every position once (the first call with U > 1).
                full_mask = causal_mask(length, tokens.device).unsqueeze(0)  # (1, U, U)
                x = layer(x, full_mask, enc, cross_mask)
            else:
                x = layer(x, self_mask, enc, cross_mask, cache=layer_cache)
            new_cache.append(x)
        logits = self.output_layer(self.final_norm(x[:, -1]))  # (N, vocab)
        return F.log_softmax(logits.float(), dim=-1), new_cache
