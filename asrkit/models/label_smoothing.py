"""Label-smoothed cross-entropy for the attention decoder (Szegedy et al. 2016, sec. 7).

The target distribution puts ``1 - smoothing`` on the reference token and spreads
``smoothing`` evenly over the other V - 1 tokens; the loss is KL(target || model) summed over
the non-padded positions (as in ESPnet/WeNet; it differs from smoothed cross-entropy only by
the constant entropy of the target). It is divided by the number of tokens when
``normalize_length`` is true, otherwise by the batch size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LabelSmoothingLoss(nn.Module):
    def __init__(self, vocab_size: int, smoothing: float = 0.1,
                 normalize_length: bool = False) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.vocab_size = vocab_size
        self.smoothing = smoothing
        self.normalize_length = normalize_length

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """logits (batch, U, V), targets (batch, U) long, mask (batch, U) bool, True = real
        token -> scalar loss."""
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (batch, U, V)
        off = self.smoothing / (self.vocab_size - 1)
        on = 1.0 - self.smoothing
        safe_targets = targets.masked_fill(~mask, 0).unsqueeze(-1)  # (batch, U, 1)
        target_log_prob = log_probs.gather(-1, safe_targets).squeeze(-1)  # (batch, U)
        # KL(t || p) = sum_v t_v log t_v - sum_v t_v log p_v, with t = off everywhere but on.
        entropy_term = on * math.log(on) + (
            (self.vocab_size - 1) * off * math.log(off) if off > 0 else 0.0)
        cross = -(off * (log_probs.sum(-1) - target_log_prob) + on * target_log_prob)
        loss = ((entropy_term + cross) * mask).sum()
        denom = mask.sum() if self.normalize_length else logits.size(0)
        return loss / denom
