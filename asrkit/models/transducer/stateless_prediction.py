"""Stateless prediction network of a transducer (Ghodsi et al. 2020; the context-size-2
variant with a 1-D convolution is icefall's): the prediction for the next symbol depends
only on the last ``context_size`` labels, not on the whole history.

    out_u = relu(conv(embed(y_{u-c+1}), ..., embed(y_u)))       c = context_size

The convolution has kernel ``c``, no padding, and ``groups`` (default: 4 channels per
group as in icefall, or for an ``embedding_dim`` not a multiple of 4 the fewest channels,
4 or more, that divide it: 250 -> 5 channels, 50 groups); with ``context_size=1`` there is
no convolution (Ghodsi et al.'s bigram network:
relu of the embedding of the last label).

Start symbol: the blank (id 0 in asrkit's tokenizers), as in icefall and ESPnet. Position 0 of
``forward``'s output is the prediction after the start symbol alone, and the context to its
left is padded with blanks too, so ``forward(y)[:, u]`` sees ``[blank]*(c-1) + [blank] + y``
windowed at u.

Decoding state: the ``c - 1`` labels before the one being fed, ``((N, c-1) long,)``: a
tuple of tensors with the hypothesis dimension first, as every prediction network's state.
"""

from __future__ import annotations

import torch
from torch import nn


class StatelessPredictionNetwork(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int = 512, context_size: int = 2,
                 groups: int | None = None, blank_id: int = 0) -> None:
        """groups: of the convolution (None: ``default_groups(embedding_dim)``;
        ``embedding_dim`` channels must divide into them)."""
        super().__init__()
        if context_size < 1:
            raise ValueError(f"stateless prediction context_size must be >= 1, got {context_size}")
        groups = groups or default_groups(embedding_dim)
        if embedding_dim % groups:
            raise ValueError(f"stateless prediction embedding_dim {embedding_dim} is not "
                             f"divisible by groups {groups}")
        self.vocab_size, self.blank_id = vocab_size, blank_id
        self.context_size, self.output_dim = context_size, embedding_dim
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.conv = None
        if context_size > 1:
            self.conv = nn.Conv1d(embedding_dim, embedding_dim, context_size, groups=groups,
                                  bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, U) valid ids (no padding value) -> (B, U + 1, embedding_dim): position
        u is the prediction after the start symbol and the first u labels."""
        left = tokens.new_full((tokens.size(0), self.context_size), self.blank_id)
        return self._predict(torch.cat([left, tokens], dim=1))

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The state before the start symbol is fed: ``c - 1`` blanks per row."""
        return (torch.full((batch, self.context_size - 1), self.blank_id, dtype=torch.long,
                           device=device),)

    def step(self, tokens: torch.Tensor,
             state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """tokens (N,) the last label of each row (the blank start symbol first) ->
        ((N, embedding_dim), the state with ``tokens`` shifted in)."""
        window = torch.cat([state[0], tokens[:, None]], dim=1)  # (N, c)
        return self._predict(window)[:, 0], (window[:, 1:],)

    def _predict(self, window_tokens: torch.Tensor) -> torch.Tensor:
        """(B, L + c - 1) labels -> (B, L, embedding_dim), each output over its last c labels."""
        emb = self.embed(window_tokens)  # (B, L + c - 1, E)
        if self.conv is not None:
            emb = self.conv(emb.transpose(1, 2)).transpose(1, 2)  # (B, L, E)
        return torch.relu(emb)


def default_groups(channels: int) -> int:
    """Groups of 4 channels (icefall's choice), or of the fewest channels, 4 or more, that
    divide ``channels`` (all of them in one group when none does)."""
    per_group = next((n for n in range(4, channels + 1) if channels % n == 0), channels)
    return max(1, channels // max(per_group, 1))
