"""Training checkpoints: atomic writes, retention, finding where to resume (the RNG states
they hold are captured and restored by asrkit.training.rng).

Files live in ``<exp_dir>/checkpoints/``: ``epoch_N.pt`` after epoch N (1-based),
``step_S.pt`` every ``trainer.save_interval_steps`` updates and on SIGINT/SIGTERM (S is the
global update count), and ``last.pt``, a symlink to the newest of them. Each is a dict of
plain data (``torch.load(weights_only=True)`` loads it; see asrkit.models.checkpoint)::

    model, config (resolved, with vocab_size), optimizer, scheduler, grad_scaler (fp16 only),
    loader (sampler epoch/position), rng (torch, cuda, python, numpy), epoch, step,
    epoch_complete, train_hours, counters, metrics {epoch, step, train_hours, dev_loss,
    dev_wer (percent), dev_cer, dev_acc, dev_<term>..., train_<term>...}

A file is written to a hidden temporary name in the same directory and renamed into place,
with a content hash beside it (``epoch_N.pt.sha256``, asrkit.checkpoint_io), so a crash
never leaves a truncated checkpoint under a real name and a corrupted one is recognised:
resuming passes over it to the newest sound checkpoint. Retention: the newest
``keep_last`` and the best ``keep_best`` epoch checkpoints by ``best_metric`` are kept
(``*acc*`` metrics: higher is better; others lower), and the newest ``keep_last`` step
checkpoints; a step checkpoint written when a signal stopped the run (``interrupted``) goes
once the resumed run has written a newer epoch checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import CorruptCheckpointError, atomic_save, hash_path, load_file, verify
from asrkit.experiment_dir import LAST_CHECKPOINT

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(epoch|step)_(\d+)\.pt$")


def is_training_checkpoint_name(name: str) -> bool:
    """Whether a file name is one the trainer writes and resumes from (epoch_N.pt,
    step_N.pt, last.pt)."""
    return name == LAST_CHECKPOINT or _NAME.match(name) is not None


# ---- files -----------------------------------------------------------------------------------
def _point_last(directory: Path, target: Path) -> None:
    """Make ``last.pt`` a relative symlink to ``target`` (replaced atomically)."""
    tmp = directory / f".{LAST_CHECKPOINT}.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(target.name, tmp)
    os.replace(tmp, directory / LAST_CHECKPOINT)


@dataclass
class CheckpointInfo:
    path: Path
    kind: str  # "epoch" | "step"
    step: int
    epoch: int
    epoch_complete: bool
    metrics: dict[str, Any]
    interrupted: bool = False  # a step checkpoint written on SIGINT/SIGTERM


def read_info(path: Path) -> CheckpointInfo | None:
    """The bookkeeping of a checkpoint (memory-mapped, cheap), or None if it is unreadable."""
    match = _NAME.match(path.name)
    if not match:
        return None
    try:
        ckpt = load_file(path, mmap=True)
        return CheckpointInfo(path, match.group(1), int(ckpt["step"]), int(ckpt["epoch"]),
                              bool(ckpt.get("epoch_complete", match.group(1) == "epoch")),
                              dict(ckpt.get("metrics", {})), bool(ckpt.get("interrupted")))
    except (CorruptCheckpointError, OSError, KeyError, TypeError, ValueError) as e:  # foreign,
        # or gone since the directory was listed
        log.warning("checkpoint %s is not readable, ignored (%s: %s)", path, type(e).__name__, e)
        return None


def list_checkpoints(directory: str | Path) -> list[CheckpointInfo]:
    """Readable epoch/step checkpoints in ``directory``, oldest first (by update, then kind)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    infos = [read_info(p) for p in sorted(directory.iterdir()) if _NAME.match(p.name)]
    return sorted((i for i in infos if i is not None),
                  key=lambda i: (i.step, i.epoch_complete, i.kind == "epoch"))


def newest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint ``trainer.resume=auto`` continues from: the one with the most updates
    done that is sound: its content hash matches (asrkit.checkpoint_io), or it has none and
    loads in full. A corrupt newer one is passed over with a warning naming both."""
    skipped = []
    for info in reversed(list_checkpoints(directory)):
        if _sound(info.path):
            if skipped:
                log.warning("checkpoint %s is corrupt (%s); resuming from %s instead",
                            ", ".join(str(p) for p in skipped),
                            "its content differs from its recorded hash", info.path)
            return info.path
        skipped.append(info.path)
    if skipped:
        log.warning("every checkpoint in %s is corrupt (%s): starting afresh", directory,
                    ", ".join(str(p) for p in skipped))
    return None


def _sound(path: Path) -> bool:
    verified = verify(path)
    if verified is not None:
        return verified
    try:  # no hash recorded: load it in full
        load_file(path)
    except CorruptCheckpointError as e:
        log.warning("%s", e)
        return False
    return True


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of a state dict holding NaN/inf."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def non_finite_problem(state: dict[str, torch.Tensor], last_saved: tuple[Path | None, int],
                       step: int) -> str | None:
    """Why a checkpoint of ``state`` must not be written (a NaN/inf parameter or buffer),
    naming the tensor and the last checkpoint known to be sound (``last_saved``: its path
    and update); None if every tensor is finite."""
    name = first_non_finite(state)
    if name is None:
        return None
    path, saved_at = last_saved
    since = (f"since update {saved_at} ({path} was the last checkpoint written)" if path
             else "since the run started (no checkpoint was written)")
    return (f"model tensor {name} holds NaN/inf values {since}, now at update {step}; no "
            "checkpoint written (lower optim.lr, check the data, or resume from that "
            "checkpoint)")


def metric_is_higher_better(metric: str) -> bool:
    return "acc" in metric


def best_first(infos: list[CheckpointInfo], metric: str) -> list[CheckpointInfo]:
    """The checkpoints holding ``metric``, best first, ties to the newer (retention and
    `asrkit average --best-by` rank alike)."""
    scored = [i for i in infos if isinstance(i.metrics.get(metric), (int, float))]
    sign = -1 if metric_is_higher_better(metric) else 1
    return sorted(scored, key=lambda i: (sign * i.metrics[metric], -i.step))


class CheckpointManager:
    """Writes epoch/step checkpoints into ``directory`` and prunes old ones (rank 0 only)."""

    def __init__(self, directory: str | Path, keep_last: int, keep_best: int, best_metric: str):
        self.directory = Path(directory)
        self.keep_last, self.keep_best, self.best_metric = keep_last, keep_best, best_metric
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".*.tmp*"):  # left by a crash during a write
            stale.unlink(missing_ok=True)

    def save(self, state: dict[str, Any], kind: str, prune: bool = True) -> Path:
        """Write ``state`` as epoch_<epoch>.pt or step_<step>.pt, point last.pt at it, and
        prune (unless ``prune`` is false)."""
        number = state["epoch"] if kind == "epoch" else state["step"]
        path = atomic_save(state, self.directory / f"{kind}_{number}.pt")
        _point_last(self.directory, path)
        if prune:
            self.prune()
        return path

    def prune(self) -> list[Path]:
        infos = list_checkpoints(self.directory)
        epochs = [i for i in infos if i.kind == "epoch"]
        steps = [i for i in infos if i.kind == "step"]
        keep = {i.path for i in epochs[-self.keep_last:]} if self.keep_last > 0 else set()
        keep |= {i.path for i in steps[-self.keep_last:]} if self.keep_last > 0 else set()
        keep |= {i.path for i in best_first(epochs, self.best_metric)[: self.keep_best]}
        if epochs:  # a stop's checkpoint is stale once an epoch checkpoint is newer
            keep -= {i.path for i in steps if i.interrupted and i.step <= epochs[-1].step}
        newest = infos[-1].path if infos else None
        removed = [i.path for i in infos if i.path not in keep and i.path != newest]
        for path in removed:
            path.unlink(missing_ok=True)
            hash_path(path).unlink(missing_ok=True)
        return removed


def best_metric_problem(metrics: dict[str, Any], best_metric: str,
                        keep_best: int) -> str | None:
    """Why ``best_metric`` cannot rank checkpoints: the run was validated but records no such
    metric (a misspelt dev_loss_<term>, which would keep no best checkpoint); else None."""
    measured = sorted(k for k in metrics if k.startswith("dev_") and k != "dev_utterances")
    if keep_best > 0 and measured and best_metric not in metrics:
        return (f"trainer.best_metric: this run's validation records no {best_metric} (it "
                f"records {', '.join(measured)}); the checkpoint was written, nothing pruned")
    return None
