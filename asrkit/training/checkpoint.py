"""Training checkpoints: atomic writes, retention, finding where to resume, RNG states.

Files live in ``<exp_dir>/checkpoints/``: ``epoch_N.pt`` after epoch N (1-based),
``step_S.pt`` every ``trainer.save_interval_steps`` updates and on SIGINT/SIGTERM (S is the
global update count), and ``last.pt``, a symlink to the newest of them. Each is a dict of
plain data (``torch.load(weights_only=True)`` loads it; see asrkit.models.checkpoint)::

    model, config (resolved, with vocab_size), optimizer, scheduler, grad_scaler (fp16 only),
    loader (sampler epoch/position), rng (torch, cuda, python, numpy), epoch, step,
    epoch_complete, train_hours, counters, metrics {epoch, step, train_hours, dev_loss,
    dev_wer (percent), dev_cer, dev_acc, dev_<term>..., train_<term>...}

A file is written to a hidden temporary name in the same directory and renamed into place,
so a crash never leaves a truncated checkpoint under a real name. Retention: the newest
``keep_last`` and the best ``keep_best`` epoch checkpoints by ``best_metric`` are kept
(``*acc*`` metrics: higher is better; others lower), and the newest ``keep_last`` step
checkpoints.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(epoch|step)_(\d+)\.pt$")


# ---- RNG states as plain data --------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, as tensors (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- files -----------------------------------------------------------------------------------
def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file in the same directory, fsync, then rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _point_last(directory: Path, target: Path) -> None:
    """Make ``last.pt`` a relative symlink to ``target`` (replaced atomically)."""
    tmp = directory / f".last.pt.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(target.name, tmp)
    os.replace(tmp, directory / "last.pt")


@dataclass
class CheckpointInfo:
    path: Path
    kind: str  # "epoch" | "step"
    step: int
    epoch: int
    epoch_complete: bool
    metrics: dict[str, Any]


def read_info(path: Path) -> CheckpointInfo | None:
    """The bookkeeping of a checkpoint (memory-mapped, cheap), or None if it is unreadable."""
    match = _NAME.match(path.name)
    if not match:
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return CheckpointInfo(path, match.group(1), int(ckpt["step"]), int(ckpt["epoch"]),
                              bool(ckpt.get("epoch_complete", match.group(1) == "epoch")),
                              dict(ckpt.get("metrics", {})))
    except (RuntimeError, OSError, EOFError, KeyError, TypeError, ValueError,
            pickle.UnpicklingError, zipfile.BadZipFile) as e:  # truncated or foreign
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
    """The checkpoint ``trainer.resume=auto`` continues from: the most updates done."""
    infos = list_checkpoints(directory)
    return infos[-1].path if infos else None


def metric_is_higher_better(metric: str) -> bool:
    return "acc" in metric


class CheckpointManager:
    """Writes epoch/step checkpoints into ``directory`` and prunes old ones (rank 0 only)."""

    def __init__(self, directory: str | Path, keep_last: int, keep_best: int, best_metric: str):
        self.directory = Path(directory)
        self.keep_last, self.keep_best, self.best_metric = keep_last, keep_best, best_metric
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".*.tmp*"):  # left by a crash during a write
            stale.unlink(missing_ok=True)

    def save(self, state: dict[str, Any], kind: str) -> Path:
        """Write ``state`` as epoch_<epoch>.pt or step_<step>.pt, point last.pt at it, prune."""
        number = state["epoch"] if kind == "epoch" else state["step"]
        path = atomic_save(state, self.directory / f"{kind}_{number}.pt")
        _point_last(self.directory, path)
        self.prune()
        return path

    def prune(self) -> list[Path]:
        infos = list_checkpoints(self.directory)
        epochs = [i for i in infos if i.kind == "epoch"]
        steps = [i for i in infos if i.kind == "step"]
        keep = {i.path for i in epochs[-self.keep_last:]} if self.keep_last > 0 else set()
        keep |= {i.path for i in steps[-self.keep_last:]} if self.keep_last > 0 else set()
        scored = [i for i in epochs if isinstance(i.metrics.get(self.best_metric), (int, float))]
        higher = metric_is_higher_better(self.best_metric)
        scored.sort(key=lambda i: i.metrics[self.best_metric], reverse=higher)
        keep |= {i.path for i in scored[: self.keep_best]}
        newest = infos[-1].path if infos else None
        removed = [i.path for i in infos if i.path not in keep and i.path != newest]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed
