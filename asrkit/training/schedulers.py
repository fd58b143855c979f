"""Learning-rate schedules, stepped once per optimiser update.

- ``NoamScheduler`` (Vaswani et al. 2017, eq. 3): the rate of update ``s`` (1-based) is
  ``factor * d_model^-0.5 * min(s^-0.5, s * warmup_steps^-1.5)``: a linear warm-up to
  ``factor * (d_model * warmup_steps)^-0.5`` at ``s = warmup_steps``, then inverse square root
  decay. It sets the rate itself; the optimiser's ``lr`` is not used. ``d_model`` defaults
  to the encoder's output size (the trainer fills it in when the config leaves it null).
- ``WarmupLinearScheduler``: linear warm-up from 0 to the optimiser's ``lr`` over
  ``warmup_steps`` (update s has ``lr * s / warmup_steps``), then linear decay towards
  ``min_lr_ratio * lr``, reached just after update ``total_steps``.
- ``WarmupCosineScheduler``: the same warm-up, then half a cosine down to
  ``min_lr_ratio * lr`` (just after update ``total_steps``) (Loshchilov & Hutter 2017, without restarts).

``total_steps`` defaults to the number of updates of the whole run (the trainer fills it in:
``max_epochs * ceil(batches of epoch 1 / accum_grad)``). All are ``torch.optim.lr_scheduler``
schedulers, so ``state_dict()`` is plain data and resumes exactly. A resumed run whose config
gives another total (``trainer.max_epochs`` raised to train on) moves the end of the schedule
there with ``set_total_steps``: its later updates get the rates a fresh run of the new length
would give them.
"""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LRScheduler


class NoamScheduler(LRScheduler):
    def __init__(self, optimizer: torch.optim.Optimizer, d_model: int | None = None,
                 warmup_steps: int = 25000, factor: float = 5.0) -> None:
        if d_model is None or d_model <= 0:
            raise ValueError(f"scheduler.d_model: must be a positive integer, got {d_model}")
        if warmup_steps <= 0:
            raise ValueError(f"scheduler.warmup_steps: must be > 0, got {warmup_steps}")
        if factor <= 0:
            raise ValueError(f"scheduler.factor: must be > 0, got {factor}")
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer)

    def rate(self, step: int) -> float:
        """The learning rate of update ``step`` (1-based)."""
        step = max(step, 1)
        return self.factor * self.d_model ** -0.5 * min(step ** -0.5,
                                                        step * self.warmup_steps ** -1.5)

    def get_lr(self) -> list[float]:
        return [self.rate(self.last_epoch + 1) for _ in self.optimizer.param_groups]


class _WarmupDecayScheduler(LRScheduler):
    """Linear warm-up to the base rate, then ``decay(progress in [0, 1])`` times it."""

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 1000,
                 total_steps: int | None = None, min_lr_ratio: float = 0.0) -> None:
        if warmup_steps < 0:
            raise ValueError(f"scheduler.warmup_steps: must be >= 0, got {warmup_steps}")
        if total_steps is None or total_steps <= 0:
            raise ValueError(f"scheduler.total_steps: must be a positive integer, got {total_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"scheduler.min_lr_ratio: must be in [0, 1], got {min_lr_ratio}")
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer)

    def decay(self, progress: float) -> float:
        raise NotImplementedError

    def multiplier(self, step: int) -> float:
        """Factor applied to the base rate at update ``step`` (1-based)."""
        if step <= self.warmup_steps:
            return step / self.warmup_steps
        # the floor is reached just after the last update, so that no update has rate 0
        span = max(self.total_steps - self.warmup_steps + 1, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * self.decay(progress)

    def get_lr(self) -> list[float]:
        factor = self.multiplier(self.last_epoch + 1)
        return [base * factor for base in self.base_lrs]


class WarmupLinearScheduler(_WarmupDecayScheduler):
    def decay(self, progress: float) -> float:
        return 1.0 - progress


class WarmupCosineScheduler(_WarmupDecayScheduler):
    def decay(self, progress: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def set_total_steps(scheduler: LRScheduler, total_steps: int) -> int | None:
    """Make a (restored) schedule end at ``total_steps`` and reset the optimiser's rate for
    the next update accordingly; returns the previous total, or None when it was already
    that or the schedule has none (Noam)."""
    previous = getattr(scheduler, "total_steps", None)
    if previous is None or previous == total_steps:
        return None
    if total_steps <= 0:
        raise ValueError(f"scheduler.total_steps: must be a positive integer, got {total_steps}")
    scheduler.total_steps = total_steps
    rates = scheduler.get_lr()  # of update last_epoch + 1, the next one
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = list(rates)
    return previous


def build_scheduler(scheduler_cfg: dict, optimizer: torch.optim.Optimizer, total_steps: int,
                    d_model: int) -> LRScheduler:
    """The schedule the ``scheduler`` config section names; ``total_steps`` and ``d_model``
    fill in arguments of that name which the config leaves null."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import get_object, instantiate

    from asrkit.models.build import check_section

    check_section(scheduler_cfg, "scheduler", filled_in=("optimizer",))
    params = inspect.signature(get_object(scheduler_cfg["_target_"])).parameters
    fill = {name: value for name, value in (("total_steps", total_steps), ("d_model", d_model))
            if name in params and scheduler_cfg.get(name) is None}
    try:
        return instantiate({**scheduler_cfg, **fill}, optimizer=optimizer, _convert_="all")
    except InstantiationException as e:  # Hydra wraps the scheduler's own error; raise that one
        raise (e.__cause__ if isinstance(e.__cause__, ValueError) else e) from None
