"""LSTM prediction network of a transducer (Graves 2012, sec. 2.2): an embedding of the last
label followed by an LSTM over the label history. The Conformer (Gulati et al. 2020) and
ContextNet (Han et al. 2020) transducers use one layer of 320 cells for their small models
and 640 for the medium and large ones.

    out_u = LSTM(embed(blank), embed(y_1), ..., embed(y_u))_u

Start symbol: the blank (id 0 in asrkit's tokenizers), as in icefall and ESPnet; position 0 of
``forward``'s output is the prediction after the start symbol alone.

Decoding state: ``(h, c)``, each (N, num_layers, hidden_size), i.e. a tuple of tensors with
the hypothesis dimension first, as every prediction network's state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LSTMPredictionNetwork(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int = 640, num_layers: int = 1,
                 embedding_dim: int | None = None, dropout: float = 0.1,
                 blank_id: int = 0) -> None:
        """embedding_dim: default ``hidden_size``; dropout: on the embedding and on the
        LSTM output."""
        super().__init__()
        embedding_dim = embedding_dim or hidden_size
        self.vocab_size, self.blank_id = vocab_size, blank_id
        self.num_layers, self.hidden_size, self.output_dim = num_layers, hidden_size, hidden_size
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        # nn.LSTM's dropout acts between stacked layers only; self.dropout does the output
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, U) valid ids (no padding value) -> (B, U + 1, hidden_size): position u
        is the prediction after the start symbol and the first u labels."""
        start = tokens.new_full((tokens.size(0), 1), self.blank_id)
        emb = self.dropout(self.embed(torch.cat([start, tokens], dim=1)))  # (B, U + 1, E)
        out, _ = self.lstm(emb)
        return self.dropout(out)  # (B, U + 1, H)

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Zero h and c, before the start symbol is fed."""
        zeros = torch.zeros(batch, self.num_layers, self.hidden_size, device=device,
                            dtype=self.embed.weight.dtype)
        return zeros, zeros.clone()

    def step(self, tokens: torch.Tensor,
             state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """tokens (N,) the last label of each row (the blank start symbol first) ->
        ((N, hidden_size), the state after it). For decoding (eval mode): the LSTM cell
        equations with nn.LSTM's weights, 3-4x faster on a CPU than a one-step nn.LSTM call,
        which repacks its weights every time (no dropout between layers here)."""
        x = self.dropout(self.embed(tokens))  # (N, E)
        hs, cs = [], []
        for layer in range(self.num_layers):
            h, c = state[0][:, layer], state[1][:, layer]  # (N, H)
            gates = F.linear(x, getattr(self.lstm, f"weight_ih_l{layer}"),
                             getattr(self.lstm, f"bias_ih_l{layer}")) \
                + F.linear(h, getattr(self.lstm, f"weight_hh_l{layer}"),
                           getattr(self.lstm, f"bias_hh_l{layer}"))  # (N, 4H): i, f, g, o
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return self.dropout(x), (torch.stack(hs, dim=1), torch.stack(cs, dim=1))
