"""One micro-batch and one optimiser update, with the failure handling of the loop.

``TrainStep`` owns the model as it is run (plain, DDP-wrapped, compiled), the precision and
the update rules (accumulation, clipping, NaN handling); the optimiser, the schedule, the
update counter and the skip counters are the run's ``TrainingState``
(asrkit.training.training_state), which it advances. The trainer calls, per micro-batch::

    out = steps.forward(batch, sync)          # None: out of memory (batch shape logged)
    flags = steps.agree(StepFlags(exhausted, stop, out is None, loss not finite))
    steps.skip(...) | steps.backward(out["loss"] / accum_grad, batch, sync)
    steps.update()                            # on the last micro-batch of an update

``sync`` is False on every micro-batch but the last of an update: under DDP those run under
``no_sync()`` and only the last one all-reduces the accumulated gradients. ``agree`` is the
collective after the forward pass (each flag OR-ed over ranks), so every rank skips, stops
or ends the epoch at the same micro-batch; the trainer agrees once more before the forward
on whether any rank's batch failed to load. Without DDP both are free.

``trainer.compile=true`` compiles the training forward (and with it the backward) once, for
batches of every shape (``compile_for_varying_shapes``; see there for what it costs).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import astuple, dataclass

import torch
from torch import nn

from asrkit.training import distributed as dist_utils
from asrkit.training.mwer_nbest import MwerNBest
from asrkit.training.precision import Precision
from asrkit.training.training_state import TrainingState

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class StepFlags:
    """What a rank found at one micro-batch; ``TrainStep.agree`` ORs each over the ranks."""

    exhausted: bool = False   # no batch left this epoch
    stop: bool = False        # SIGINT/SIGTERM received
    oom: bool = False         # the forward pass ran out of memory
    nonfinite: bool = False   # the loss is NaN/inf

    @property
    def skipped(self) -> bool:
        return self.oom or self.nonfinite


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


def _ids(batch: dict, most: int = 4) -> str:
    ids = list(batch.get("ids") or [])
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return "utterances " + ", ".join(ids[:most]) + more


def batch_shape(batch: dict) -> str:
    return f"feats {tuple(batch['feats'].shape)}, tokens {tuple(batch['tokens'].shape)}"


class RunningMeans:
    """Sums of the model's scalar terms and data counts since ``start``."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.batches = self.frames = self.utterances = 0
        self.start = time.monotonic()

    def add(self, out: dict[str, torch.Tensor], batch: dict) -> None:
        for key, value in out.items():
            if torch.is_tensor(value) and value.numel() == 1:
                self.sums[key] += float(value.detach())
        self.batches += 1
        self.frames += int(batch["feat_lens"].sum())
        self.utterances += len(batch["ids"])

    def means(self) -> dict[str, float]:
        return {k: total / self.batches for k, total in self.sums.items()} if self.batches else {}

    def rates(self, world_size: int) -> dict[str, float]:
        """Input frames and utterances per second, all ranks (this rank's times world_size)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return {"frames_per_s": self.frames * world_size / elapsed,
                "utts_per_s": self.utterances * world_size / elapsed}


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
        self.ddp = dist_utils.wrap_model(model, ctx)
        self.train_model = compile_for_varying_shapes(self.ddp) if compile else self.ddp
        self.nan_in_a_row = 0
        self._stats_before: list[torch.Tensor] = []

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
        """Each flag OR-ed over ranks (one all-reduce)."""
        if not self.ctx.is_distributed:
            return flags
        device = self.device if self.device.type == "cuda" else torch.device("cpu")
        value = torch.tensor([float(f) for f in astuple(flags)], device=device)
        return StepFlags(*(f > 0 for f in dist_utils.all_reduce_sum(value, self.ctx).tolist()))

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
        statistics it updates are kept aside, so that ``skip`` can undo them: a skipped
        micro-batch leaves no trace in the model."""
        self._stats_before = [b.clone() for b in self._running_stats()]
        feats = batch["feats"].to(self.device, non_blocking=True)
        feat_lens = batch["feat_lens"].to(self.device, non_blocking=True)
        tokens = batch["tokens"].to(self.device, non_blocking=True)
        token_lens = batch["token_lens"].to(self.device, non_blocking=True)
        set_step = getattr(self.model, "set_step", None)
        if set_step is not None:  # e.g. the scheduled-sampling ramp
            set_step(self.state.step)
        try:
            with self._sync(sync), self.precision.autocast():
                extra = {}
                if self.mwer is not None:  # the model's own N-best, searched without gradient
                    nbest, errors = self.mwer(feats, feat_lens, tokens, token_lens)
                    extra = {"nbest": nbest, "word_errors": errors}
                return self.train_model(feats, feat_lens, tokens, token_lens, **extra)
        except torch.OutOfMemoryError:
            log.warning("out of memory in the forward pass of a batch of %s; batch skipped "
                        "(lower data.sampler.max_frames if this repeats)", batch_shape(batch))
            self._restore_running_stats()
            self._free_memory()
            return None

    def _restore_running_stats(self) -> None:
        with torch.no_grad():
            for buffer, before in zip(self._running_stats(), self._stats_before, strict=True):
                buffer.copy_(before)

    def backward(self, loss: torch.Tensor, batch: dict, sync: bool) -> bool:
        """False if the backward pass ran out of memory (gradients dropped; one process)."""
        scaler = self.precision.scaler
        try:
            with self._sync(sync):
                (scaler.scale(loss) if scaler is not None else loss).backward()
            return True
        except torch.OutOfMemoryError:
            if self.ctx.is_distributed:
                raise TrainingError(
                    f"out of memory in the backward pass of a batch of {batch_shape(batch)} "
                    f"under DDP (cannot be skipped there); lower data.sampler.max_frames "
                    f"or use trainer.activation_checkpointing=true") from None
            log.warning("out of memory in the backward pass of a batch of %s; update skipped",
                        batch_shape(batch))
            self.optimizer.zero_grad(set_to_none=True)
            self.state.counters["oom_skipped"] += 1
            self._free_memory()
            return False

    def _free_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def skip(self, batch: dict, flags: StepFlags, out: dict | None,
             last_of_update: bool) -> None:
        """A micro-batch some rank could not use: no backward on any rank, and the running
        statistics its forward pass changed are put back; if it ends an update, that update
        is dropped. Raises TrainingError after max_nan_in_a_row."""
        if out is not None:
            self._restore_running_stats()
        if last_of_update:
            self.optimizer.zero_grad(set_to_none=True)
        if flags.oom:
            self.state.counters["oom_skipped"] += 1
            return
        self.state.counters["nan_skipped"] += 1
        loss = float(out["loss"].detach()) if out is not None else float("nan")
        self._count_nonfinite(f"non-finite loss ({loss} on this rank) at update "
                              f"{self.state.step}, batch of {batch_shape(batch)} "
                              f"({_ids(batch)}): skipped")

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

    def update(self) -> float:
        """Clip the global gradient norm to ``grad_clip``, step and schedule; returns the
        norm before clipping (what is logged as ``grad_norm``). Without fp16, an update whose
        norm is not finite is skipped and counts toward ``max_nan_in_a_row`` like a
        non-finite loss; with fp16 the GradScaler skips overflowing updates itself (a few
        are normal while it finds its scale) and they are not counted."""
        state, scaler = self.state, self.precision.scaler
        if scaler is not None:
            scaler.unscale_(state.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip or float("inf")))
        if not math.isfinite(norm) and scaler is None:
            state.counters["nonfinite_grad_skipped"] += 1
            state.optimizer.zero_grad(set_to_none=True)
            self._count_nonfinite(f"non-finite gradient norm at update {state.step}: "
                                  f"update skipped")
            return norm
        if scaler is not None:
            scaler.step(state.optimizer)
            scaler.update()
        else:
            state.optimizer.step()
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        self.nan_in_a_row = 0
        return norm
