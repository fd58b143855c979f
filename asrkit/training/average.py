"""Checkpoint averaging: the element-wise mean of the model weights of N checkpoints
(the last N epochs, or the best N by a dev metric), as ESPnet and WeNet do before decoding.

    asrkit average exp/conformer --num 10                    # last 10 epochs -> avg_10.pt
    asrkit average exp/conformer --num 5 --best-by dev_wer   # best 5 -> avg_best_dev_wer_5.pt

The two ways are named apart, so one never overwrites the other. The file written is
recorded as the experiment's averaged model (``averaged.json``, asrkit.experiment_dir),
which ``asrkit decode`` and ``asrkit transcribe`` use unless told otherwise. Best-by ties go
to the newer epoch (a plateau of equal dev WERs picks its latest epochs, as the last-N rule
would). Asking for more checkpoints than the experiment holds is an error naming how many
there are: the file name promises N (``trainer.keep_last`` / ``keep_best`` bound how many
epoch checkpoints are kept); with ``allow_fewer`` (``--allow-fewer``, what the recipes pass,
so that a run shorter than ``--avg_num`` epochs still averages) all there are are averaged
and the name says how many.

Floating-point tensors are averaged (summed in float64, then cast back); integer tensors
(BatchNorm's ``num_batches_tracked``) are taken from the newest checkpoint. The result is a
checkpoint in the usual format (asrkit.models.checkpoint.load_model reads it):
``{"model", "config", "averaged_from": [file names, in the order averaged], "epoch",
"step", "train_hours", "metrics": {"averaged": [per-checkpoint metrics]}}``; ``epoch``,
``step`` and ``train_hours`` are those of the newest checkpoint that went in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import CorruptCheckpointError, atomic_save, load_file, verify
from asrkit.experiment_dir import ExperimentDir
from asrkit.models.checkpoint import config_problem, weights_problem
from asrkit.training.checkpoint import (
    CheckpointInfo,
    best_first,
    is_training_checkpoint_name,
    list_checkpoints,
)

log = logging.getLogger(__name__)


def default_output_name(num: int, best_by: str | None = None) -> str:
    """``avg_<num>.pt`` for the last ``num`` epochs, ``avg_best_<metric>_<num>.pt`` for the
    best ``num`` by a dev metric."""
    return f"avg_{num}.pt" if best_by is None else f"avg_best_{best_by}_{num}.pt"


def select_checkpoints(exp_dir: str | Path, num: int, best_by: str | None = None,
                       allow_fewer: bool = False,
                       skip_corrupt: bool = False) -> list[CheckpointInfo]:
    """``num`` epoch checkpoints of ``exp_dir``: the newest, or the best by ``best_by``
    (e.g. dev_loss, dev_wer; ties: the newer); ValueError if fewer exist, unless
    ``allow_fewer`` (then all there are, with a warning). Oldest first. An epoch checkpoint
    that is unreadable or differs from its recorded hash is an error naming it (leaving it
    out silently would average other epochs than asked), unless ``skip_corrupt``."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    directory = ExperimentDir(exp_dir).checkpoint_dir
    epochs = _sound_epochs(directory, skip_corrupt)
    if not epochs:
        raise FileNotFoundError(f"{directory}: no epoch_N.pt checkpoint")
    pool = epochs
    if best_by is not None:
        pool = [i for i in epochs if isinstance(i.metrics.get(best_by), (int, float))]
        if not pool:
            known = sorted({k for i in epochs for k in i.metrics})
            raise ValueError(f"--best-by {best_by}: no checkpoint records it "
                             f"(recorded: {', '.join(known)})")
    if len(pool) < num and allow_fewer:
        log.warning("--num %d: %s holds only %d epoch checkpoint(s) (a short run?); averaging "
                    "those", num, directory, len(pool))
        num = len(pool)
    if len(pool) < num:
        which = f"epoch checkpoint(s) recording {best_by}" if best_by else "epoch checkpoint(s)"
        raise ValueError(f"--num {num}: {directory} holds only {len(pool)} {which} "
                         f"({', '.join(i.path.name for i in pool)}); use --num {len(pool)} "
                         f"(trainer.keep_last and keep_best bound how many are kept)")
    if best_by is None:
        chosen = epochs[-num:]
        numbers = [i.epoch for i in chosen]
        if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            log.warning("--num %d: the newest %d epoch checkpoints are epochs %s, not "
                        "consecutive (the others were pruned: trainer.keep_last, keep_best)",
                        num, num, ", ".join(map(str, numbers)))
        return chosen
    return sorted(best_first(pool, best_by)[:num], key=lambda i: i.step)


def _sound_epochs(directory: Path, skip_corrupt: bool) -> list[CheckpointInfo]:
    """The epoch checkpoints that can be averaged; one that cannot (unreadable, bytes other
    than its hash, content asrkit does not write) is an error, or left out with a warning
    under ``--skip-corrupt``."""
    infos = [i for i in list_checkpoints(directory) if i.kind == "epoch"]
    readable = {i.path for i in infos}
    bad = {p: "corrupt or unreadable checkpoint" for p in sorted(directory.glob("epoch_*.pt"))
           if p not in readable}
    bad |= {i.path: "corrupt or unreadable checkpoint" for i in infos
            if verify(i.path) is False}
    bad |= {i.path: problem for i in infos if i.path not in bad
            and (problem := _content_problem(i.path))}
    if bad and not skip_corrupt:
        path, why = next(iter(bad.items()))
        raise CorruptCheckpointError(
            f"{path}: {why}; not averaging without it (that would average other epochs than "
            f"asked): delete it, or pass --skip-corrupt")
    for path, why in bad.items():
        log.warning("%s: %s, left out (--skip-corrupt)", path, why)
    return [i for i in infos if i.path not in bad]


def _content_problem(path: Path) -> str | None:
    """Why a readable checkpoint holds no weights asrkit could average, or None."""
    checkpoint = load_file(path, mmap=True)
    if "model" not in checkpoint:
        return "not a checkpoint asrkit wrote (no 'model' entry)"
    problem = weights_problem(checkpoint["model"]) or config_problem(checkpoint.get("config"))
    return f"not a checkpoint asrkit wrote ({problem})" if problem else None


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; other tensors from the last state."""
    if not states:
        raise ValueError("no checkpoints to average")
    keys = list(states[-1])
    for i, state in enumerate(states[:-1]):
        if list(state) != keys:
            raise ValueError(f"checkpoint {i} has other parameters than the newest one")
        for key in keys:
            if state[key].shape != states[-1][key].shape:
                raise ValueError(f"checkpoint {i}'s {key} is {tuple(state[key].shape)}, the "
                                 f"newest one's {tuple(states[-1][key].shape)}: not one model")
    out = {}
    for key in keys:
        newest = states[-1][key]
        if newest.is_floating_point():
            total = sum(state[key].to(torch.float64) for state in states)
            out[key] = (total / len(states)).to(newest.dtype)
        else:
            out[key] = newest.clone()
    return out


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """The averaged checkpoint (plain data) of ``paths`` (oldest first)."""
    checkpoints = []
    for path in paths:
        try:
            checkpoints.append(load_file(path))
        except CorruptCheckpointError as e:
            raise CorruptCheckpointError(f"{e}; delete it, or pass --skip-corrupt") from None
    newest = checkpoints[-1]
    try:
        model = average_state_dicts([c["model"] for c in checkpoints])
    except ValueError as e:  # checkpoints of two runs in one directory: the files' fault
        numbered = "; ".join(f"{n}: {Path(p).name}" for n, p in enumerate(paths))
        raise CorruptCheckpointError(f"{e} ({numbered})") from None
    return {
        "model": model,
        "config": newest["config"],
        "averaged_from": [Path(p).name for p in paths],
        "epoch": newest.get("epoch"),
        "step": newest.get("step"),
        "train_hours": newest.get("train_hours"),
        "metrics": {"averaged": [c.get("metrics", {}) for c in checkpoints]},
    }


def _is_model_file(path: Path) -> bool:
    """Whether ``path`` holds a model checkpoint (a dict with ``model``): the only kind of
    file ``asrkit average --out`` may replace."""
    try:
        data = load_file(path, mmap=True)
    except CorruptCheckpointError:
        return False
    return isinstance(data, dict) and "model" in data


def average_experiment(exp_dir: str | Path, num: int, best_by: str | None = None,
                       out: str | Path | None = None, allow_fewer: bool = False,
                       skip_corrupt: bool = False) -> tuple[Path, list[str]]:
    """Write ``exp_dir/<default_output_name>`` (or ``out``) and record it as the
    experiment's averaged model (what decoding uses by default) when it lies in
    ``exp_dir``; returns its path and the names of the checkpoints averaged. The name
    counts the checkpoints actually averaged."""
    exp = ExperimentDir(exp_dir)
    if out and is_training_checkpoint_name(Path(out).name):
        raise ValueError(f"--out: {out} is named as a training checkpoint (epoch_N.pt, "
                         f"step_N.pt, last.pt), which the trainer resumes from; choose "
                         f"another name")
    if out and Path(out).is_file() and not _is_model_file(Path(out)):
        raise ValueError(f"--out: {out} exists and is not a model checkpoint (a manifest, a "
                         "config?); choose another name")
    chosen = select_checkpoints(exp.path, num, best_by, allow_fewer, skip_corrupt)
    averaged = average_checkpoints([i.path for i in chosen])
    averaged["averaged_by"] = best_by or "last"
    path = Path(out) if out else exp.path / default_output_name(len(chosen), best_by)
    atomic_save(averaged, path)
    if path.resolve().parent == exp.path.resolve():
        exp.record_average(path, averaged["averaged_from"])
    return path, list(averaged["averaged_from"])

