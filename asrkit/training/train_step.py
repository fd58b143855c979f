"""One micro-batch and one optimiser update, with the failure handling of the loop.

``TrainStep`` owns the model as it is run (plain, DDP-wrapped, compiled), the precision and
the update rules (accumulation, clipping, NaN handling); the optimiser, the schedule, the
update counter and the skip counters are the run's ``TrainingState``
(asrkit.training.training_state), which it advances. The trainer calls, per micro-batch::

    out = steps.forward(batch, sync)          # None: out of memory (batch shape logged)
    flags = steps.agree(StepFlags(exhausted, stop, out is None))
    steps.skip(last_of_update) | finite = steps.backward(out["loss"] / accum_grad, batch, sync)
    steps.update()                            # on the last micro-batch of an update
    steps.settle()                            # at log lines, checkpoints, the epoch's end

``sync`` is False on every micro-batch but the last of an update: under DDP those run under
``no_sync()`` and only the last one all-reduces the accumulated gradients. ``agree`` ORs
what the hosts know (no batch left, a stop signal, out of memory) over ranks, so every rank
skips, stops or ends the epoch at the same micro-batch; the trainer agrees once more before
the forward on whether any rank's batch failed to load. Without DDP both are free.

No host-device synchronisation in a step: nothing the device computes is read by the host
between a batch's arrival and the end of its optimiser step, so on a GPU the host queues
the next batch while the device still works on this one. What the host used to read at
every step, and where it went:

- a non-finite loss: found on the device (OR-ed over ranks on the device). The backward
  pass runs anyway (its gradient is made NaN before the update, so the update is skipped),
  the BatchNorm statistics its forward pass changed are put back with ``torch.where``, and
  its terms count as zeros in the running means (asrkit.training.running_means). With
  gradient accumulation a non-finite loss drops its whole update (a skip used to drop only
  its own micro-batch), which is what happened when it was the last micro-batch anyway.
- a non-finite gradient norm: clipping computes the norm on the device, and the optimiser
  step is a no-op when it is not finite (``found_inf`` of torch's fused kernels,
  asrkit.training.optimizer_step); under fp16 the GradScaler does the same.
- the skip counters, ``trainer.max_nan_in_a_row`` and the update counter: the host counts
  every update it attempted and the schedule moves on; ``settle`` reads what the device
  knows (asrkit.training.update_outcomes: one copy) and replays it in order, so counters,
  warnings (with the batch's utterances), the stop after too many skips in a row and the
  update counter come out as if checked at every step; a skipped update's schedule step is
  taken back (schedulers.rewind). Between a skip and the next ``settle`` (at most
  ``trainer.log_interval`` updates) the rate and the scheduled-sampling ramp run one update
  ahead per skip, and a run that diverged stops at that next log line instead of at once.
- logged means: summed on the device, read at log lines.

What still synchronises: an optimiser without a fused kernel (one read of the norm per
update, asrkit.training.optimizer_step), fp16 with such an optimiser (the GradScaler reads
its overflow flag), MWER training (its N-best search), and inside the model torch's CTC
loss (which copies the lengths to the host), the transducer loss (its memory plan reads the
lengths) and MoE dispatch (``nonzero`` per expert).

``trainer.compile=true`` compiles the training forward (and with it the backward) once, for
batches of every shape (``compile_for_varying_shapes``; see there for what it costs).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import astuple, dataclass

import torch
from torch import nn

from asrkit.training import distributed as dist_utils
from asrkit.training.mwer_nbest import MwerNBest
from asrkit.training.optimizer_step import step_if_finite
from asrkit.training.precision import Precision
from asrkit.training.schedulers import rewind
from asrkit.training.training_state import TrainingState
from asrkit.training.update_outcomes import (
    UpdateOutcome,
    UpdateOutcomes,
    batch_shape,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StepFlags:
    """What a rank's host found at one micro-batch; ``TrainStep.agree`` ORs each over the
    ranks. (A non-finite loss is the device's to know: asrkit.training.update_outcomes.)"""

    exhausted: bool = False   # no batch left this epoch
    stop: bool = False        # SIGINT/SIGTERM received
    oom: bool = False         # the forward pass ran out of memory


def compile_for_varying_shapes(module: nn.Module) -> nn.Module:
    """``torch.compile`` for batches whose size, frame count and transcript length change
    from one batch to the next (bucketed batches all differ).

    ``dynamic=True`` traces every input dimension as a symbol, so the graphs are compiled
    once and not per shape. Inductor's layout optimisation is turned off: it gives the
    activations saved for the backward pass strides fixed at the first batch's sizes
    (convolutions, e.g. the conv2d front end and the Conformer's convolution module), which
    on torch 2.11 pins the batch and time sizes: every new shape recompiled until dynamo's
    recompile_limit (8) was hit and the rest of the run fell back to eager (a tiny model's
    first epoch took 4:19 instead of 0:01). The cost is one compilation per graph (the
    CTC loss, whose output shape depends on the data, splits the model in a few) at the
    first batch, measured on a shared 2-core CPU: about 65 s for the 100k-parameter test
    Transformer (whose eager epoch takes 1 s), 4.5 min for a 110k-parameter Conformer and
    4 min for a 1.2M-parameter ContextNet, none recompiled over 10 batch shapes (not
    measured on a GPU). A batch of one utterance compiles once more (dimensions of size 1
    are specialised). Worth it for long runs; for short ones eager is faster overall.
    """
    return torch.compile(module, dynamic=True, options={"layout_optimization": False})


class TrainingError(RuntimeError):
    """The run cannot go on (NaN losses in a row, OOM under DDP); the message says why."""


class TrainStep:
    def __init__(self, model: nn.Module, state: TrainingState, precision: Precision,
                 ctx: dist_utils.DistributedContext, accum_grad: int = 1,
                 grad_clip: float | None = None, max_nan_in_a_row: int = 10,
                 compile: bool = False, mwer: MwerNBest | None = None) -> None:
        """mwer: with it, every forward pass is the MWER objective over the N-best lists
        it makes (asrkit.training.mwer_nbest)."""
        self.model, self.state, self.mwer = model, state, mwer
        self.precision, self.ctx = precision, ctx
        self.accum_grad, self.grad_clip, self.max_nan_in_a_row = accum_grad, grad_clip, \
            max_nan_in_a_row
        self.ddp = dist_utils.wrap_model(model, ctx, find_unused_parameters=mwer is not None)
        self.train_model = compile_for_varying_shapes(self.ddp) if compile else self.ddp
        self.nan_in_a_row = 0
        self.outcomes = UpdateOutcomes()  # what the device knows and the host has not read
        self._stats_before: list[torch.Tensor] = []
        self._synced = False  # whether the last forward ran synced (DDP: armed its reducer)
        self._resync = False  # the next forward must run synced (see ``skip``)

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.state.optimizer

    def release_wrappers(self) -> None:
        """Drop the DDP and compiled wrappers (before the process group goes)."""
        self.ddp = self.train_model = self.model

    def _sync(self, sync: bool) -> contextlib.AbstractContextManager:
        if sync or not self.ctx.is_distributed:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def agree(self, flags: StepFlags) -> StepFlags:
        """Each flag OR-ed over ranks (one all-reduce of CPU tensors)."""
        return StepFlags(*dist_utils.any_on_host(list(astuple(flags)), self.ctx))

    def agree_any(self, flag: bool) -> bool:
        """One flag OR-ed over ranks."""
        return self.agree(StepFlags(exhausted=flag)).exhausted

    def _running_stats(self) -> list[torch.Tensor]:
        """The buffers a training forward pass changes: BatchNorm's running statistics."""
        return [buffer for module in self.model.modules()
                if isinstance(module, nn.modules.batchnorm._BatchNorm)
                for buffer in module.buffers(recurse=False)]

    def forward(self, batch: dict, sync: bool) -> dict[str, torch.Tensor] | None:
        """The model's loss terms for a micro-batch (None: out of memory). The running
        statistics it updates are kept aside, so that a skipped micro-batch leaves no trace
        in the model."""
        self._stats_before = [b.clone() for b in self._running_stats()]
        feats = batch["feats"].to(self.device, non_blocking=True)
        feat_lens = batch["feat_lens"].to(self.device, non_blocking=True)
        tokens = batch["tokens"].to(self.device, non_blocking=True)
        token_lens = batch["token_lens"].to(self.device, non_blocking=True)
        set_step = getattr(self.model, "set_step", None)
        if set_step is not None:  # e.g. the scheduled-sampling ramp
            set_step(self.state.step)
        self._synced, self._resync = sync or self._resync, False
        try:
            with self._sync(self._synced), self.precision.autocast():
                extra = {}
                if self.mwer is not None:  # the model's own N-best, searched without gradient
                    nbest, errors = self.mwer(feats, feat_lens, tokens, token_lens)
                    extra = {"nbest": nbest, "word_errors": errors}
                return self.train_model(feats, feat_lens, tokens, token_lens, **extra)
        except torch.OutOfMemoryError:
            log.warning("out of memory in the forward pass of a batch of %s; batch skipped "
                        "(lower data.sampler.max_frames if this repeats)", batch_shape(batch),
                        extra={"every_rank": True})
            self._restore_running_stats()
            self._free_memory()
            return None

    def _restore_running_stats(self, where: torch.Tensor | None = None) -> None:
        """Put back the statistics kept by ``forward``: all of them, or (``where``, a 0-d
        bool on the device) only if it is True, without the host reading it."""
        with torch.no_grad():
            for buffer, before in zip(self._running_stats(), self._stats_before, strict=True):
                buffer.copy_(before if where is None else torch.where(where, before, buffer))

    def backward(self, loss: torch.Tensor, batch: dict, sync: bool) -> torch.Tensor | None:
        """The backward pass of ``loss``; returns whether the loss is finite on every rank
        (0-d bool on the device, not read here), or None if the backward pass ran out of
        memory (the update's gradients are dropped; one process only).

        A non-finite loss is not skipped on the host: its backward runs (every rank runs
        the same collectives), its running statistics are put back, and ``update`` makes
        its update a no-op. A loss without a gradient (a constant) has no backward pass."""
        nonfinite = dist_utils.any_on_device(~torch.isfinite(loss.detach()), self.ctx)
        self.outcomes.add(nonfinite, loss, batch)
        scaler = self.precision.scaler
        try:
            with self._sync(sync or self._synced):
                if loss.requires_grad:
                    (scaler.scale(loss) if scaler is not None else loss).backward()
            if self._stats_before:  # after the backward pass, which saved them
                self._restore_running_stats(where=nonfinite)
            return ~nonfinite
        except torch.OutOfMemoryError:
            if self.ctx.is_distributed:
                raise TrainingError(
                    f"out of memory in the backward pass of a batch of {batch_shape(batch)} "
                    f"under DDP (cannot be skipped there); lower data.sampler.max_frames "
                    f"or use trainer.activation_checkpointing=true") from None
            log.warning("out of memory in the backward pass of a batch of %s; update skipped",
                        batch_shape(batch), extra={"every_rank": True})
            self.drop_update()
            self.state.counters["oom_skipped"] += 1
            self._free_memory()
            return None

    def _free_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def skip(self, last_of_update: bool) -> None:
        """A micro-batch some rank ran out of memory on: no backward on any rank; if it
        ends an update, that update is dropped.

        Under DDP, a rank whose synced forward pass finished has armed DDP's reducer for a
        backward pass that does not come; the next backward would then all-reduce on that
        rank alone, even under ``no_sync`` (with gradient accumulation: a collective
        mismatch). So the next forward runs synced on every rank, which re-arms every
        reducer alike; its backward all-reduces the gradients accumulated so far, and the
        update's last one all-reduces them again: averaging is linear, so the update is
        the same."""
        self.state.counters["oom_skipped"] += 1
        self._resync = self.ctx.is_distributed and self._synced
        if last_of_update:
            self.drop_update()

    def drop_update(self) -> None:
        """Drop the gradients of the update under way before its optimiser step (a
        micro-batch of it could not be used)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.outcomes.close(None)

    def update(self) -> torch.Tensor:
        """Clip the global gradient norm to ``grad_clip``, step and schedule; returns the
        norm before clipping (what is logged as ``grad_norm``; 0-d, on the device, not read
        here). An update with a non-finite loss or gradient norm is a no-op on the device;
        ``settle`` counts it. Without fp16 such an update counts toward
        ``max_nan_in_a_row``; with fp16 the GradScaler skips overflowing updates itself (a
        few are normal while it finds its scale) and they are not counted toward it (a
        non-finite loss still is; its NaN gradient also lowers the scale). Such a skipped
        fp16 update still advances the step counter and the schedule, as torch's usual
        GradScaler loop does."""
        state, scaler = self.state, self.precision.scaler
        params = [p for p in self.model.parameters() if p.grad is not None]
        nonfinite_loss = self.outcomes.nonfinite_loss()
        if params and nonfinite_loss is not None:  # the norm then says "skip"
            params[0].grad.masked_fill_(nonfinite_loss, float("nan"))
        if scaler is not None:
            scaler.unscale_(state.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip or float("inf"))
        if scaler is not None:
            scaler.step(state.optimizer)
            scaler.update()
        else:
            step_if_finite(state.optimizer, norm)
        state.last_lr = state.lr()  # before the schedule moves on to the next update's
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        self.outcomes.close(norm.detach(), counts_grad=scaler is None)
        return norm

    def settle(self) -> None:
        """Read what the device knows about the updates since the last call (one
        synchronisation) and count it as if checked at each: skipped updates are taken off
        the update counter and the schedule, skips are counted and logged; raises
        TrainingError at ``max_nan_in_a_row`` in a row."""
        state = self.state
        outcomes = self.outcomes.read()
        state.step -= sum(o.attempted for o in outcomes)  # the count before those updates
        undone = 0
        try:
            for outcome in outcomes:
                undone += self._count(outcome)
        finally:
            rewind(state.scheduler, undone)

    def _count(self, outcome: UpdateOutcome) -> int:
        """Count one update's outcome; returns 1 if it was attempted but skipped."""
        state = self.state
        for mb in outcome.micro_batches:
            if mb.nonfinite:
                state.counters["nan_skipped"] += 1
                self._count_nonfinite(f"non-finite loss ({mb.loss} on this rank) at update "
                                      f"{state.step}, batch of {mb.shape} ({mb.ids}): skipped")
        if not outcome.attempted:
            return 0
        if outcome.nonfinite_loss:
            return 1
        if outcome.counts_grad and not math.isfinite(outcome.norm):
            state.counters["nonfinite_grad_skipped"] += 1
            self._count_nonfinite(f"non-finite gradient norm at update {state.step}: "
                                  f"update skipped")
            return 1
        state.step += 1
        self.nan_in_a_row = 0
        return 0

    def _count_nonfinite(self, what: str) -> None:
        """One more non-finite loss or gradient norm since the last update made; raises
        TrainingError at ``max_nan_in_a_row``."""
        self.nan_in_a_row += 1
        counters = self.state.counters
        skipped = counters["nan_skipped"] + counters["nonfinite_grad_skipped"]
        log.warning("%s (%d in a row, %d in all)", what, self.nan_in_a_row, skipped)
        if self.nan_in_a_row >= self.max_nan_in_a_row:
            raise TrainingError(
                f"{self.nan_in_a_row} non-finite losses or gradient norms in a row "
                f"(trainer.max_nan_in_a_row={self.max_nan_in_a_row}) at update {self.state.step}: "
                f"the model has diverged or the data is broken; lower optim.lr, keep "
                f"trainer.grad_clip set, or check the data")
