"""Scheduled sampling for the attention decoder (Bengio et al. 2015; Chiu et al. 2018,
arXiv 1712.01769, sec. 2.4: ramped to p = 0.4, 7.7 -> 7.1 WER on voice search).

With probability p, the decoder input at a position is the model's own prediction instead of
the reference token. The predictions come from a first, teacher-forced pass without
gradient (argmax of its output at the position before); the loss is that of a second pass
on the mixed inputs, against the unchanged reference. The first input (sos) is never
replaced. p grows linearly from 0 at step 0 to ``max_prob`` at ``ramp_steps`` and stays
there. At p = 0 the second pass sees exactly the teacher-forced inputs.

The step lives in a non-persistent buffer: set it with ``set_step(step)`` (the trainer calls
``model.set_step(global_step)`` before each forward); it is not saved in state dicts, and a
tensor (not a Python number) keeps ``torch.compile`` from recompiling at every step.
"""

from __future__ import annotations

import torch
from torch import nn


def sampling_probability(step: torch.Tensor, max_prob: float, ramp_steps: int) -> torch.Tensor:
    """Linear ramp: 0 at step 0, ``max_prob`` from ``ramp_steps`` on (at once if 0)."""
    if ramp_steps <= 0:
        return torch.full_like(step, max_prob, dtype=torch.float32)
    return max_prob * (step.float() / ramp_steps).clamp(0.0, 1.0)


def mix_decoder_inputs(dec_in: torch.Tensor, first_pass_logits: torch.Tensor,
                       mask: torch.Tensor, prob: torch.Tensor | float) -> torch.Tensor:
    """dec_in (batch, U) = [sos, y_1 .. y_{U-1}], first_pass_logits (batch, U, V) whose
    position u predicts y_{u+1}, mask (batch, U) bool -> (batch, U) inputs where each real
    position after the first is, with probability ``prob``, the prediction for it."""
    predictions = first_pass_logits.argmax(-1)  # (batch, U): prediction for position u+1
    candidates = torch.cat([dec_in[:, :1], predictions[:, :-1]], dim=1)  # aligned with dec_in
    replace = torch.rand(dec_in.shape, device=dec_in.device) < prob  # (batch, U)
    replace[:, 0] = False  # sos stays
    return torch.where(replace & mask, candidates, dec_in)


class ScheduledSampling(nn.Module):
    """The schedule and its step counter (see the module docstring)."""

    def __init__(self, max_prob: float, ramp_steps: int = 0) -> None:
        super().__init__()
        if not 0.0 <= max_prob <= 1.0:
            raise ValueError(f"scheduled_sampling_prob must be in [0, 1], got {max_prob}")
        if ramp_steps < 0:
            raise ValueError(f"scheduled_sampling_ramp_steps must be >= 0, got {ramp_steps}")
        self.max_prob = max_prob
        self.ramp_steps = ramp_steps
        self.register_buffer("step", torch.zeros((), dtype=torch.long), persistent=False)

    def set_step(self, step: int) -> None:
        self.step.fill_(int(step))

    def probability(self) -> torch.Tensor:
        """The current p, a 0-dim fp32 tensor."""
        return sampling_probability(self.step, self.max_prob, self.ramp_steps)
