"""Learning-rate schedules, stepped once per optimiser update.

- ``NoamScheduler`` (Vaswani et al. 2017, eq. 3): the rate of update ``s`` (1-based) is
``factor * d_model^-0.5 * min(s^-0.5, s * warmup_steps^-1.5)``: a linear warm-up to ``factor
* (d_model * warmup_steps)^-0.5`` at ``s = warmup_steps``, then inverse square root decay.
It sets the rate itself; the optimiser's ``lr`` is not used. ``d_model`` defaults to the
encoder's output size (the trainer fills it in when the config leaves it null). -
``WarmupLinearScheduler``: linear warm-up from 0 to the optimiser's ``lr`` over
``warmup_steps`` (update s has ``lr * s / warmup_steps``), then linear decay towards
``min_lr_ratio * lr``, reached just after update ``total_steps``. -
``WarmupCosineScheduler``: the same warm-up, then half a cosine down to ``min_lr_ratio *
lr`` (just after update ``total_steps``) (Loshchilov & Hutter 2017, without restarts).

``total_steps`` defaults to the number of updates of the whole run (the trainer fills it in:
``max_epochs * ceil(batches of epoch 1 / accum_grad)``). Warm-up follows the run's length:
``build_scheduler`` shortens ``warmup_steps`` to a quarter of the run's updates when it is
longer (with a warning; Noam's ``factor`` is scaled with it so that its peak rate stays the
configured one, reached earlier), so that a short run (a first try, a test, a small corpus) is not
spent entirely in warm-up at a tiny rate; runs longer than 4 x warm-up are unchanged. All
are ``torch.optim.lr_scheduler`` schedulers, so ``state_dict()`` is plain data and resumes
exactly. A resumed run whose config gives another total (``trainer.max_epochs`` raised to
train on) moves the end of the schedule there with ``set_total_steps``: its later updates
get the rates a fresh run of the new length would give them."""

from __future__ import annotations

import logging
import math

import torch
from torch.optim.lr_scheduler import LRScheduler

from asrkit.arg_types import NonNegativeInt, PositiveFloat, PositiveInt, UnitInterval

log = logging.getLogger(__name__)

MAX_WARMUP_SHARE = 0.25  # warm-up takes at most this share of a run's updates


class NoamScheduler(LRScheduler):
    def __init__(self, optimizer: torch.optim.Optimizer, d_model: PositiveInt | None = None,
                 warmup_steps: PositiveInt = 25000, factor: PositiveFloat = 5.0) -> None:
        if d_model is None:
            raise ValueError("scheduler.d_model: must be a positive integer, got None")
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

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: NonNegativeInt = 1000,
                 total_steps: PositiveInt | None = None, min_lr_ratio: UnitInterval = 0.0) -> None:
        if total_steps is None:
            raise ValueError("scheduler.total_steps: must be a positive integer, got None")
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


def effective_warmup(warmup_steps: int, total_steps: int) -> int:
    """The warm-up a run of ``total_steps`` updates gets: ``warmup_steps``, cut to a quarter
    of the run when it is longer (module docstring)."""
    if warmup_steps > MAX_WARMUP_SHARE * total_steps:
        return max(1, int(MAX_WARMUP_SHARE * total_steps))
    return warmup_steps


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
    configured = getattr(scheduler, "configured_warmup_steps", None)
    if configured is not None:  # the warm-up of a fresh run of the new length
        scheduler.warmup_steps = effective_warmup(configured, total_steps)
    rates = scheduler.get_lr()  # of update last_epoch + 1, the next one
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = list(rates)
    return previous


def rewind(scheduler: LRScheduler, updates: int) -> None:
    """Take back the last ``updates`` steps of the schedule: the next update gets the rate
    it would have had if they had never been made. The trainer steps the schedule at every
    update it attempts and learns only later (asrkit.training.update_outcomes) which ones
    the optimiser skipped. Exact for schedules whose rate is a function of the update count
    (all of this module's, and LambdaLR's)."""
    if updates <= 0:
        return
    scheduler.last_epoch -= updates + 1
    scheduler.step()  # back to last_epoch - updates, the rate set from it


def build_scheduler(scheduler_cfg: dict, optimizer: torch.optim.Optimizer, total_steps: int,
                    d_model: int) -> LRScheduler:
    """The schedule the ``scheduler`` config section names; ``total_steps`` and ``d_model``
    fill in arguments of that name which the config leaves null."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import get_object, instantiate

    from asrkit.config.targets import check_section

    check_section(scheduler_cfg, "scheduler", filled_in=("optimizer",))
    params = inspect.signature(get_object(scheduler_cfg["_target_"])).parameters
    fill = {name: value for name, value in (("total_steps", total_steps), ("d_model", d_model))
            if name in params and scheduler_cfg.get(name) is None}
    warmup = scheduler_cfg.get("warmup_steps")
    run_length = scheduler_cfg.get("total_steps") or total_steps
    if isinstance(warmup, int) and effective_warmup(warmup, run_length) != warmup:
        fill["warmup_steps"] = effective_warmup(warmup, run_length)
        same_peak = ""
        if issubclass(get_object(scheduler_cfg["_target_"]), NoamScheduler):
            # Noam's peak is factor * (d_model * warmup)^-0.5: a shorter warm-up alone would
            # raise it (4x shorter: 2x higher); the factor keeps the configured peak
            fill["factor"] = scheduler_cfg.get("factor", 5.0) * math.sqrt(
                fill["warmup_steps"] / warmup)
            same_peak = f" (factor {fill['factor']:.4g}: the same peak rate)"
        log.warning("scheduler.warmup_steps=%d is more than a quarter of this run's %d updates: "
                    "warm-up shortened to %d updates%s", warmup, run_length,
                    fill["warmup_steps"], same_peak)
    try:
        scheduler = instantiate({**scheduler_cfg, **fill}, optimizer=optimizer, _convert_="all")
    except InstantiationException as e:  # Hydra wraps the scheduler's own error; raise that one
        raise (e.__cause__ if isinstance(e.__cause__, ValueError) else e) from None
    if isinstance(warmup, int):
        scheduler.configured_warmup_steps = warmup  # saved in state_dict(), for set_total_steps
    return scheduler
