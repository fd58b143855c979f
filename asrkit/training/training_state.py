"""Everything of a training run that a checkpoint restores besides the model weights:
optimiser, schedule, GradScaler, update counter, epoch and loader position, skip counters,
training time, and every rank's RNG states and load failures so far.

    state = TrainingState(optimizer, scheduler, scaler, train_loader)
    ckpt = {"model": model.state_dict(), "config": config, "metrics": metrics,
            **state.state_dict(epoch_complete=True, rng=gathered_rng_states, world_size=1,
                              load_failures=[[]])}
    where = state.load_state_dict(ckpt, rank=0, world_size=1)   # "batch 12/40 of epoch"

The trainer and the step (asrkit.training.train_step) share this one object: the step
advances ``step`` and the skip ``counters``, the trainer the epoch; nobody else holds a
copy. Exact resume: the loader's sampler position (mid-epoch checkpoints) and the RNG
states come back with it, so a resumed run continues bit-identically on the CPU.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from asrkit.data.loader import ResumableLoader
from asrkit.training.rng import restore_rng_state

log = logging.getLogger(__name__)

COUNTERS = ("nan_skipped", "oom_skipped", "nonfinite_grad_skipped")


class TrainingState:
    def __init__(self, optimizer: torch.optim.Optimizer, scheduler: Any,
                 scaler: torch.amp.GradScaler | None, loader: ResumableLoader) -> None:
        self.optimizer, self.scheduler, self.scaler, self.loader = (optimizer, scheduler,
                                                                     scaler, loader)
        self.step = 0                  # optimiser updates done
        self.epoch = 1                 # the epoch under way (1-based)
        self.fresh_epoch = True        # False: resumed mid-epoch, the loader is positioned
        self.carried_stats: dict | None = None  # then the epoch's training sums so far
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.hours_before = 0.0        # training hours of the runs this one resumed
        self.start_time = time.monotonic()
        self.last_lr: float | None = None  # the rate the last update used (what is logged)

    def lr(self) -> float:
        """The rate the next update will use (the schedule has stepped past the last one)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def logged_lr(self) -> float:
        """The rate of the last update (before any: the first update's), as logged."""
        return self.lr() if self.last_lr is None else self.last_lr

    def start_clock(self) -> None:
        self.start_time = time.monotonic()

    def train_hours(self) -> float:
        return self.hours_before + (time.monotonic() - self.start_time) / 3600.0

    def state_dict(self, epoch_complete: bool, rng: list[dict[str, Any]], world_size: int,
                   load_failures: list[list[list[str]]]) -> dict[str, Any]:
        """The checkpoint entries of the state (plain data); ``rng`` and ``load_failures``
        hold every rank's RNG states and the (utterance, reason) pairs its loader could not
        load this epoch (gathered by the caller: a collective)."""
        return {
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "loader": self.loader.state_dict(), "rng": rng, "epoch": self.epoch,
            "step": self.step, "epoch_complete": epoch_complete,
            "train_hours": self.train_hours(), "counters": dict(self.counters),
            "world_size": world_size, "load_failures": load_failures,
        }

    def load_state_dict(self, ckpt: dict[str, Any], rank: int, world_size: int) -> str:
        """Restore from checkpoint entries; returns where the run continues ("the start of
        epoch" or "batch k/n of epoch"). The optimiser's state must fit (the caller turns a
        mismatch into one line)."""
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.step, self.hours_before = int(ckpt["step"]), float(ckpt["train_hours"])
        self.counters.update(ckpt.get("counters", {}))
        self.epoch = int(ckpt["epoch"]) + (1 if ckpt["epoch_complete"] else 0)
        where = "the start of epoch"
        if not ckpt["epoch_complete"]:
            try:
                self.loader.load_state_dict(ckpt["loader"])
                self.fresh_epoch = False
                self.carried_stats = ckpt.get("epoch_stats")  # absent in earlier versions
                failures = ckpt.get("load_failures") or []  # per rank; also absent there
                if len(failures) == world_size:  # the epoch's count goes on from there
                    self.loader.failed = [tuple(f) for f in failures[rank]]
                where = f"batch {self.loader.sampler.position}/{len(self.loader)} of epoch"
            except ValueError as e:
                log.warning("%s; epoch %d restarts from its first batch", e, self.epoch)
        if len(ckpt["rng"]) == world_size:
            restore_rng_state(ckpt["rng"][rank])
        else:
            log.warning("checkpoint from %d rank(s), now %d: RNG states not restored",
                        len(ckpt["rng"]), world_size)
        return where
