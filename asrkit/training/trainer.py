"""The training loop: ``Trainer(config).setup() / .train() / .cleanup()``.

    from asrkit.training.run import run_training
    status = run_training(compose_train_config([...]))   # what `asrkit train` does

One update = ``trainer.accum_grad`` micro-batches (asrkit.training.train_step): forward,
backward of loss / accum_grad, clipping of the global gradient norm to ``trainer.grad_clip``,
an optimiser step and a scheduler step. Only the model's ``loss`` is optimised; every scalar
it returns is logged (``train/<key>``, ``dev/<key>``) without the trainer knowing its name.
Each epoch ends with validation (asrkit.training.validation), attention images and
``checkpoints/epoch_N.pt``; ``trainer.valid_interval`` / ``save_interval_steps`` add
mid-epoch validation and ``step_N.pt`` checkpoints.

Failures: a NaN/inf loss or gradient norm skips its update (with gradient accumulation,
the update of all its micro-batches); each is counted, and ``trainer.max_nan_in_a_row`` of
them without an update in between stop the run (exit 1).
More than ``data.max_fail_fraction`` of a manifest's utterances failing to load stops it
too (exit 1, one line naming the manifest, the count and the last failing utterance).
A CUDA out-of-memory batch is skipped with a warning naming its shape. SIGINT/SIGTERM
finish the current update, write ``checkpoints/step_N.pt`` and exit with 130/143; the same
command resumes (``trainer.resume=auto``).

Exact resume: checkpoints are written only between updates and hold the sampler position
and every rank's RNG states; data loading never moves the global RNG (asrkit.training.rng).
On CPU a resumed run is bit-identical to an uninterrupted one (tested). Rerunning with a
larger ``trainer.max_epochs`` continues the run, and the learning-rate schedule is stretched
to the new length (asrkit.training.schedulers.set_total_steps).

No host-device synchronisation inside a step (on a GPU the host queues the next batch while
the device works): non-finite losses and gradient norms make their update a no-op on the
device, logged sums stay there, and the host reads what it needs in one copy at each log
line, checkpoint and epoch end, counting the skips as if it had checked every update
(asrkit.training.train_step says how, and what the price and the exceptions are).

The schedule's length (``scheduler.total_steps`` when null) is ``max_epochs`` times the
updates of epoch 1: the bucket packing follows each epoch's shuffle, so later epochs may
have a batch or two more or fewer (counting every epoch exactly would cost seconds per epoch
on a large corpus).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.loader import LoadFailureError, build_loader
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.durations import format_duration
from asrkit.experiment_dir import ExperimentDir
from asrkit.models.build import build_model
from asrkit.text.registry import load_tokenizer
from asrkit.training import distributed as dist_utils
from asrkit.training.activation_checkpointing import enable_activation_checkpointing
from asrkit.training.attention_maps import utterance_maps
from asrkit.training.checkpoint import (
    CheckpointManager,
    best_metric_problem,
    non_finite_problem,
)
from asrkit.training.experiment import (
    first_missing,
    note_unapplied_config,
    prepare_experiment,
    write_config,
)
from asrkit.training.host_memory import keep_freed_memory
from asrkit.training.log_handlers import STEP_LOGGER, setup_logging, teardown_logging
from asrkit.training.mwer_nbest import MwerNBest
from asrkit.training.optim import build_optimizer
from asrkit.training.precision import resolve_precision
from asrkit.training.progress import EpochProgress, use_progress_bar
from asrkit.training.resume import init_weights_from, read_init_source, resume_run
from asrkit.training.rng import capture_rng_state, rng_isolated
from asrkit.training.running_means import RunningMeans
from asrkit.training.schedulers import build_scheduler
from asrkit.training.setup_summary import log_setup
from asrkit.training.stop_signals import StopRequest
from asrkit.training.tensorboard import TensorBoardLogger
from asrkit.training.train_lock import TrainLock
from asrkit.training.train_step import StepFlags, TrainingError, TrainStep
from asrkit.training.training_state import TrainingState
from asrkit.training.validation import shard_for_validation, validate

log = logging.getLogger(__name__)
step_log = logging.getLogger(STEP_LOGGER)

__all__ = ["Trainer", "TrainingError"]


class Trainer:
    def __init__(self, config: dict[str, Any],
                 ctx: dist_utils.DistributedContext | None = None) -> None:
        self.requested_config = config
        self.ctx = ctx
        self.tb: TensorBoardLogger | None = None
        self.lock: TrainLock | None = None  # rank 0's hold on exp_dir
        self.last_saved: tuple[Path | None, int] = (None, 0)  # the last checkpoint, its update
        self.stop = StopRequest()
        self.epoch_stats = RunningMeans()  # the epoch's training means (train_<term>)
        # the last log line's loss and rate, for the progress bar (read at log lines only)
        self.logged = {"loss": math.nan, "frames_per_s": math.nan}

    # ---- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        trainer = self.requested_config["trainer"]
        self.ctx = ctx = self.ctx or dist_utils.init_distributed(trainer["device"])
        self.exp_dir = Path(self.requested_config["exp_dir"]).resolve()
        self.progress_bar = ctx.is_main and use_progress_bar(trainer["progress_bar"])
        data = self.requested_config["data"]  # read first: bad data leaves exp_dir untouched
        manifests = {key: read_manifest(Path(data[key]).resolve()) for key in ("train", "dev")}
        init_source = read_init_source(self.requested_config)  # as are init_from's weights
        self.created = first_missing(self.exp_dir) if ctx.is_main else None  # gone if setup fails
        self.lock = TrainLock.acquire(self.exp_dir) if ctx.is_main else None
        setup_logging(self.exp_dir, ctx, self.progress_bar)
        if self.lock is not None and self.lock.note:
            log.warning(self.lock.note)
        self.config = prepare_experiment(self.requested_config, ctx)
        self.tcfg = tcfg = self.config["trainer"]
        self.device = ctx.device
        log.info("host memory: %s", keep_freed_memory(tcfg["keep_freed_memory"]))
        for seed_fn in (torch.manual_seed, random.seed, np.random.seed):
            seed_fn(tcfg["seed"])  # the same initial weights on every rank
        self.tokenizer = load_tokenizer(self.config["tokenizer"]["dir"])
        self.model = build_model(self.config).to(self.device)
        torch.manual_seed(tcfg["seed"] + ctx.rank)  # dropout differs across ranks
        if tcfg["init_from"]:
            init_weights_from(self.model, tcfg["init_from"], self.config, init_source)
        if tcfg["activation_checkpointing"]:
            log.info("activation checkpointing on %d layers",
                     enable_activation_checkpointing(self.model))
        self._build_loaders(manifests)
        self.updates_per_epoch = math.ceil(len(self.train_loader) / tcfg["accum_grad"])
        self.total_steps = (self.config["scheduler"].get("total_steps")
                            or max(1, tcfg["max_epochs"] * self.updates_per_epoch))
        optimizer = build_optimizer(self.config["optim"], self.model)
        scheduler = build_scheduler(self.config["scheduler"], optimizer,
                                    total_steps=self.total_steps,
                                    d_model=self.model.encoder.output_dim)
        self.precision = resolve_precision(tcfg["precision"], self.device)
        self.state = TrainingState(optimizer, scheduler, self.precision.scaler,
                                   self.train_loader)
        self.steps = TrainStep(self.model, self.state, self.precision, ctx,
                               tcfg["accum_grad"], tcfg["grad_clip"], tcfg["max_nan_in_a_row"],
                               compile=tcfg["compile"],
                               mwer=MwerNBest.from_trainer_config(self.model, self.tokenizer, tcfg))
        exp = ExperimentDir(self.exp_dir)
        self.checkpoints = CheckpointManager(
            exp.checkpoint_dir, tcfg["keep_last"], tcfg["keep_best"],
            tcfg["best_metric"]) if ctx.is_main else None
        self.tb = TensorBoardLogger(exp.tensorboard_dir,
                                    enabled=ctx.is_main and tcfg["tensorboard"])
        log_setup(self)
        resume_run(self)  # last: restores the RNG states
        if self.state.epoch <= tcfg["max_epochs"]:  # not when there is nothing to do
            write_config(self.config, ctx)  # only once the run can start
        else:
            note_unapplied_config(self.config, ctx)
        self.stop.install()
        self.state.start_clock()

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def counters(self) -> dict[str, int]:
        return self.state.counters

    def _build_loaders(self, manifests: dict[str, list[Utterance]]) -> None:
        data_cfg, ctx = self.config["data"], self.ctx
        cmvn = GlobalCMVN.load(data_cfg["cmvn"]) if data_cfg.get("cmvn") else None
        # CTC needs a frame per token; a transducer alone can emit several on one frame
        lengths = {"output_lengths": self.model.encoder.output_lengths,
                   "frame_per_token": getattr(self.model, "ctc", None) is not None}
        self.train_loader = build_loader(data_cfg["train"], self.tokenizer, data_cfg, train=True,
                                         cmvn=cmvn, rank=ctx.rank, world_size=ctx.world_size,
                                         pin_memory=self.device.type == "cuda",
                                         utterances=manifests["train"], **lengths)
        dev_loader = build_loader(data_cfg["dev"], self.tokenizer, data_cfg, train=False,
                                  cmvn=cmvn, utterances=manifests["dev"], **lengths)
        if len(dev_loader) == 0:  # validated on nothing, a run would look perfect (WER 0)
            raise ValueError(f"data.dev: {data_cfg['dev']} gives no batch (no utterances, or "
                             f"all filtered out)")
        self.dev_loader = shard_for_validation(dev_loader, ctx)
        self.train_loader.set_epoch(1)  # counted as epoch 1 (epochs are 1-based)
        if len(self.train_loader) == 0:
            raise ValueError(f"data.train: {data_cfg['train']} gives no batch (all utterances "
                             f"filtered out, or fewer batches than the {ctx.world_size} ranks)")

    # ---- checkpoints ---------------------------------------------------------------------
    def train_hours(self) -> float:
        return self.state.train_hours()

    def save(self, kind: str, epoch_complete: bool, metrics: dict[str, Any] | None = None,
             interrupted: bool = False) -> Path | None:
        """Write epoch_N.pt / step_N.pt (rank 0); every rank calls it (RNG states are
        gathered). The checkpoint's contents: the model, the config, the metrics and the
        training state (asrkit.training.training_state)."""
        self.steps.settle()  # the true update count and skip counters
        if problem := non_finite_problem(self.model.state_dict(), self.last_saved, self.state.step):
            raise TrainingError(problem)  # never a checkpoint with a NaN/inf tensor
        rng, failed = zip(*dist_utils.gather_objects(  # every rank's: its own loads
            (capture_rng_state(), [list(f) for f in self.train_loader.failed]), self.ctx))
        state = self.state
        contents = {"model": self.model.state_dict(), "config": self.config,
                    **state.state_dict(epoch_complete, list(rng), self.ctx.world_size,
                                       list(failed)),
                    "interrupted": interrupted}
        if not epoch_complete:  # the epoch's means so far, carried on by a resume
            contents["epoch_stats"] = self.epoch_stats.totals(self.ctx)
        contents["metrics"] = {"epoch": state.epoch, "step": state.step,
                               "train_hours": contents["train_hours"], **(metrics or {})}
        problem = best_metric_problem(contents["metrics"], self.tcfg["best_metric"],
                                      self.tcfg["keep_best"])  # every rank alike
        path = (self.checkpoints.save(contents, kind, prune=problem is None)
                if self.checkpoints else None)
        self.last_saved = (path, state.step)
        dist_utils.barrier(self.ctx)
        if problem:
            raise TrainingError(problem)
        return path

    # ---- the loop ------------------------------------------------------------------------
    def train(self) -> int:
        """Train to ``trainer.max_epochs``; returns the exit status (0, or 130/143 if stopped)."""
        max_epochs, state = self.tcfg["max_epochs"], self.state
        if state.epoch > max_epochs:
            log.info("nothing to do: %d epoch(s) already trained (trainer.max_epochs=%d)",
                     state.epoch - 1, max_epochs)
            return 0
        for epoch in range(state.epoch, max_epochs + 1):
            state.epoch, epoch_start = epoch, time.monotonic()
            if state.fresh_epoch:
                self.train_loader.set_epoch(epoch)
            state.fresh_epoch = True
            with self._load_failures("train"):
                train_metrics = self._train_epoch()
            self.stop.abort_if_requested()
            if train_metrics is None:
                path = self.save("step", epoch_complete=False, interrupted=True)
                log.info("stopped by signal %d at update %d: %s written; run the same command "
                         "again to resume", self.stop.signum or 0, self.step, path)
                return self.stop.exit_status
            metrics = {f"train_{k}": v for k, v in train_metrics.items()}
            metrics.update({f"dev_{k}": v for k, v in self.validate(images=True).items()})
            self.stop.abort_if_requested()  # one dropped in the dev loader's finaliser
            path = self.save("epoch", epoch_complete=True, metrics=metrics)
            log.info("epoch %d done in %s (%.3f h of training so far): %s", epoch,
                     format_duration(time.monotonic() - epoch_start), self.train_hours(), path)
            if self.steps.agree_any(self.stop.requested):
                log.info("stopped by signal after epoch %d; run the same command again to "
                         "resume", epoch)
                return self.stop.exit_status
        log.info("training finished: %d epochs, %d updates, %.3f h; skipped: %s", max_epochs,
                 self.step, self.train_hours(), self.counters)
        return 0

    def _train_epoch(self) -> dict[str, float] | None:
        """One epoch (or its rest, after a resume): the mean of each term over every rank's
        batches (those before a resume included), or None when stopped by a signal."""
        self.model.train()
        steps, loader, total = self.steps, self.train_loader, len(self.train_loader)
        progress = EpochProgress(self.epoch, self.tcfg["max_epochs"], total, self.progress_bar,
                                 start_at=loader.sampler.position)
        epoch_stats = self.epoch_stats = RunningMeans()
        interval = RunningMeans()
        if self.state.carried_stats is not None and self.ctx.is_main:
            epoch_stats.carry(self.state.carried_stats)
        self.state.carried_stats = None
        batches = iter(loader)
        stop_pending, grad_norm = False, None
        while True:
            with rng_isolated():
                batch = next(batches, None)
            position = loader.sampler.position  # batches of this epoch taken so far
            last_of_update = position % steps.accum_grad == 0 or position >= total
            unloaded = self._unloaded(batch)
            usable = batch is not None and not unloaded
            out = steps.forward(batch, sync=last_of_update) if usable else None
            flags = steps.agree(StepFlags(exhausted=batch is None, stop=self.stop.requested,
                                          oom=usable and out is None))
            stop_pending |= flags.stop
            if flags.exhausted:
                steps.drop_update()
                break
            skipped = flags.oom or unloaded
            if unloaded:
                self._skip_unloaded(position, last_of_update)
            elif skipped:
                steps.skip(last_of_update)
            elif (finite := steps.backward(out["loss"] / steps.accum_grad, batch,
                                           sync=last_of_update)) is not None:
                epoch_stats.add(out, batch, finite)
                interval.add(out, batch, finite)
            else:  # out of memory in backward: the update's gradients are gone
                skipped = last_of_update = True
            if not last_of_update:
                continue
            if not skipped:
                grad_norm = steps.update()
            if stop_pending or self._decides_at(self.step):
                steps.settle()  # the true update count, the skips counted (a sync)
            progress.update(position, self.logged["loss"], self.state.logged_lr(),
                            self.logged["frames_per_s"])
            if (interval.batches and self.step % self.tcfg["log_interval"] == 0
                    and self._log_interval(interval, grad_norm, position, total)):
                interval = RunningMeans()
            if stop_pending:
                progress.close()
                return None
            self._periodic(position, total)
        steps.settle()
        progress.close()
        return epoch_stats.means(self.ctx)

    def _decides_at(self, step: int) -> bool:
        """Whether the loop logs, validates or saves at this update count, so that it needs
        the true count (``settle``). The count the host keeps between two settles is never
        below the true one and grows by one per attempted update: it reaches each multiple
        of an interval before or when the true count does, so none is missed."""
        intervals = (self.tcfg["log_interval"], self.tcfg["valid_interval"],
                     self.tcfg["save_interval_steps"])
        return any(interval and step % interval == 0 for interval in intervals)

    def _unloaded(self, batch: dict | None) -> bool:
        """Whether some rank's micro-batch has no utterance that loaded (a training loader
        yields it with ``ids`` empty, so every rank takes the same micro-batches). Agreed
        before the forward pass: DDP's forward has collectives of its own (the buffer
        broadcast after a synced micro-batch, the one-off bucket rebuild) that every rank must
        run or none; one more tiny all-reduce per micro-batch, free on one process."""
        return self.steps.agree_any(batch is not None and not batch["ids"])

    def _skip_unloaded(self, position: int, last_of_update: bool) -> None:
        """Skip, on every rank, a micro-batch some rank has no utterance of (the loader
        logged them); the update it ends, if any, is dropped as after a NaN loss."""
        if last_of_update:  # the update's other micro-batches were never all-reduced
            self.steps.drop_update()
        log.info("batch %d of epoch %d skipped on every rank: a rank's utterances all failed "
                 "to load%s", position, self.epoch, " (update dropped)" if last_of_update else "")

    def _log_interval(self, interval: RunningMeans, grad_norm: torch.Tensor | None,
                      position: int, total: int) -> bool:
        """A log line and TensorBoard points (after ``settle``: reading the device's sums
        and the last gradient norm costs no further wait); False, and nothing logged, when
        every micro-batch of the interval had a non-finite loss."""
        means = interval.means(self.ctx)
        if not means:
            return False
        norm = float(grad_norm) if grad_norm is not None else math.nan
        values = {**means, "lr": self.state.logged_lr(), "grad_norm": norm,
                  **interval.rates()}
        self.logged = {"loss": means.get("loss", math.nan),
                       "frames_per_s": values["frames_per_s"]}
        terms = "  ".join(f"{k} {v:.4g}" for k, v in means.items())
        step_log.info("epoch %d  batch %d/%d  update %d  %s  lr %.3e  grad_norm %.3g  "
                      "%.0f frames/s", self.epoch, position, total, self.step, terms,
                      values["lr"], norm, values["frames_per_s"])
        self.tb.scalars("train", values, self.step)
        return True

    def _periodic(self, position: int, total: int) -> None:
        """Step checkpoints and mid-epoch validation (not at the epoch's last batch)."""
        if position >= total:
            return
        valid, save = self.tcfg["valid_interval"], self.tcfg["save_interval_steps"]
        metrics = {}
        if valid and self.step % valid == 0:
            metrics = {f"dev_{k}": v for k, v in self.validate(images=False).items()}
        if save and self.step % save == 0:
            log.info("update %d: %s", self.step,
                     self.save("step", epoch_complete=False, metrics=metrics))

    # ---- validation ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _load_failures(self, split: str) -> Iterator[None]:
        """Turn the loader's LoadFailureError (too many utterances of data.<split> failed)
        into a TrainingError: one line, exit status 1."""
        try:
            yield
        except LoadFailureError as e:
            raise TrainingError(
                f"data.{split} {self.config['data'][split]}: {e}; fix or remove those "
                f"utterances, or raise data.max_fail_fraction") from None

    def validate(self, images: bool) -> dict[str, float]:
        start = time.monotonic()
        with self._load_failures("dev"):
            metrics = validate(self.model, self.dev_loader, self.tokenizer, self.device,
                               self.precision, self.ctx)
        terms = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                          if k not in ("wer", "cer", "utterances"))
        log.info("epoch %d update %d dev: %s  WER %.2f%%  CER %.2f%%  (%d utterances, %s)",
                 self.epoch, self.step, terms, metrics["wer"], metrics["cer"],
                 metrics["utterances"], format_duration(time.monotonic() - start))
        self.tb.scalars("dev", metrics, self.step)
        if images and self.ctx.is_main and self.tcfg["num_attention_images"] > 0:
            self._attention_images()
        self.tb.flush()
        return metrics

    def _attention_images(self) -> None:
        """Attention maps of the first dev utterance, teacher-forced with its transcript."""
        with rng_isolated():
            item = self.dev_loader.dataset[0]
        if "error" not in item:
            self.tb.images(utterance_maps(self.model, item, self.device, self.precision.autocast(),
                                          self.tcfg["num_attention_images"]), self.step)

    # ---- cleanup -------------------------------------------------------------------------
    def cleanup(self, synchronize: bool = False) -> None:
        """Close the TensorBoard writer and leave the process group. The DDP and compiled
        wrappers are freed first, while the group lives: DDP's reducer freed at interpreter
        exit may free the gloo group with it, whose destructor joins a thread that waits for
        the GIL the exiting thread holds (a PyTorch teardown deadlock: ranks hung after
        "training finished"). ``synchronize`` (every rank returned from ``train``): all ranks
        meet at a barrier before the group goes, so no collective is in flight; a rank that
        failed alone must not wait there for the others."""
        self.stop.restore()
        if self.tb is not None:
            self.tb.close()
        steps = getattr(self, "steps", None)
        if steps is not None:
            steps.release_wrappers()
            if self.tcfg["compile"]:
                torch.compiler.reset()  # dynamo's caches may hold the compiled DDP module
            gc.collect()  # a wrapper left in a reference cycle goes now, not at exit
        if self.ctx is not None:
            dist_utils.cleanup(self.ctx, synchronize)
        if self.lock is not None:
            self.lock.release()
        teardown_logging()  # a later run's errors (a sweep's next job) are not this run's
