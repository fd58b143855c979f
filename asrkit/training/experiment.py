"""Setting up the experiment directory for a training run (its layout is
asrkit.experiment_dir's): copies of the tokenizer and the CMVN statistics, and
``config.yaml`` as run (the logging to ``train.log``: asrkit.training.log_handlers). The directory is the same on every DDP rank; rank 0
alone writes, the others wait at a barrier and then read the copies.
"""

from __future__ import annotations

import copy
import filecmp
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from asrkit.atomic_text import write_text_atomic
from asrkit.experiment_dir import ExperimentDir
from asrkit.text.registry import copy_tokenizer, fingerprint, load_tokenizer
from asrkit.training.distributed import DistributedContext, barrier

log = logging.getLogger(__name__)

def _copy_file(src: Path, dst: Path) -> None:
    if src.resolve() == dst.resolve():
        return
    if dst.exists() and not filecmp.cmp(src, dst, shallow=False):
        raise ValueError(f"{dst} exists and differs from {src}: this experiment was trained "
                         f"with other data; use another exp_dir")
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _copy_tokenizer(src: Path, dst: Path) -> None:
    if src.resolve() == dst.resolve():
        return
    if dst.exists():
        same = [filecmp.cmp(src / f.name, f, shallow=False) if (src / f.name).is_file() else False
                for f in dst.iterdir() if f.is_file()]
        if not all(same):
            raise ValueError(f"{dst} holds another tokenizer than {src}: this experiment was "
                             f"trained with other units; use another exp_dir")
    copy_tokenizer(src, dst)


def first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist (what making ``path``
    creates), or None when ``path`` exists."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    return missing[-1] if missing else None


def experiment_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as the experiment directory records it (paths into exp_dir, absolute)."""
    saved = copy.deepcopy(config)
    exp = ExperimentDir(Path(config["exp_dir"]).resolve())
    saved["exp_dir"] = str(exp.path)
    saved["tokenizer"] = {**(saved.get("tokenizer") or {}), "dir": str(exp.tokenizer_dir)}
    data = saved["data"]
    for split in ("train", "dev"):
        if data.get(split):
            data[split] = str(Path(data[split]).resolve())
    data["cmvn"] = str(exp.cmvn_file) if config["data"].get("cmvn") else None
    return saved


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new), key=str)
        return [k for key in keys
                for k in changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def prepare_experiment(config: dict[str, Any], ctx: DistributedContext) -> dict[str, Any]:
    """Create exp_dir and copy the tokenizer and CMVN in; returns the config as the
    experiment records it (with ``vocab_size`` set), on every rank. ``write_config`` writes
    it once the run has been set up."""
    saved = experiment_config(config)
    exp = ExperimentDir(saved["exp_dir"])
    if ctx.is_main:
        exp.path.mkdir(parents=True, exist_ok=True)
        _copy_tokenizer(Path(config["tokenizer"]["dir"]), exp.tokenizer_dir)
        if config["data"].get("cmvn"):
            _copy_file(Path(config["data"]["cmvn"]), exp.cmvn_file)
    barrier(ctx)
    tokenizer = load_tokenizer(saved["tokenizer"]["dir"])
    saved["vocab_size"] = int(tokenizer.vocab_size)
    saved["tokenizer"]["fingerprint"] = fingerprint(tokenizer)  # checked when decoding
    return saved


def write_config(saved: dict[str, Any], ctx: DistributedContext) -> Path:
    """Write ``exp_dir/config.yaml`` (rank 0), warning about keys that differ from the
    previous run's."""
    path = ExperimentDir(saved["exp_dir"]).config_file
    if ctx.is_main:
        if changes := _config_changes(path, saved):
            log.warning("config differs from the previous run's config.yaml in: %s",
                        ", ".join(changes))
        write_text_atomic(path, yaml.safe_dump(saved, sort_keys=False, allow_unicode=True))
    return path


def note_unapplied_config(saved: dict[str, Any], ctx: DistributedContext) -> None:
    """For a finished run that is not trained further: warn (rank 0) about keys that differ
    from its config.yaml, which this command then does not apply."""
    path = ExperimentDir(saved["exp_dir"]).config_file
    if ctx.is_main and (changes := _config_changes(path, saved)):
        log.warning("config differs from the finished run's config.yaml in: %s; nothing is "
                    "trained, so it is not applied (train into another exp_dir, or raise "
                    "trainer.max_epochs to go on with it)", ", ".join(changes))


def _config_changes(path: Path, saved: dict[str, Any]) -> list[str]:
    if not path.is_file():
        return []
    previous = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return changed_keys(previous, saved)
