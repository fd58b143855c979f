"""CTC head (Graves et al. 2006): a linear layer from encoder frames to the vocabulary
(blank included) and the CTC loss.

The loss is ``F.ctc_loss`` summed over the batch and divided by the batch size (the
per-utterance mean used by ESPnet/WeNet), with ``zero_infinity=True`` so an utterance too
short for its transcript contributes 0 instead of inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models.linear import Linear


class CTC(nn.Module):
    def __init__(self, encoder_dim: int, vocab_size: int, blank_id: int = 0) -> None:
        super().__init__()
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"ctc blank_id {blank_id} is outside the vocabulary of {vocab_size}")
        self.blank_id = blank_id
        self.linear = Linear(encoder_dim, vocab_size)

    def log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """(batch, T, encoder_dim) -> (batch, T, vocab) log-probabilities (in fp32)."""
        return F.log_softmax(self.linear(enc).float(), dim=-1)

    def forward(self, enc: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor,
                target_lens: torch.Tensor) -> torch.Tensor:
        """enc (batch, T, d), enc_lens (batch,), targets (batch, U) padded with anything
        past target_lens (batch,) -> scalar loss (sum over the batch / batch size)."""
        log_probs = self.log_probs(enc).transpose(0, 1)  # (T, batch, vocab)
        positions = torch.arange(targets.size(1), device=targets.device)
        targets = targets.masked_fill(positions >= target_lens.unsqueeze(1), self.blank_id)
        loss = F.ctc_loss(log_probs, targets, enc_lens, target_lens, blank=self.blank_id,
                          reduction="sum", zero_infinity=True)
        return loss / enc.size(0)
