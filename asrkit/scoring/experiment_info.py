"""What an experiment directory says about its model and training cost, for comparisons:
parameter count, epochs trained and training hours, read from the decoded checkpoint.

The checkpoint is loaded memory-mapped (``weights_only=True``), so a large one costs little.
Parameters are counted by building the model from the checkpoint's resolved config on the
``meta`` device (no memory; each parameter counted once, buffers excluded). Epochs and
training hours come from the checkpoint's ``epoch`` and ``train_hours`` (or
``metrics["train_hours"]``), as asrkit.training writes them; where the checkpoint lacks them
(an averaged ``avg_N.pt`` from elsewhere) from the newest checkpoint it averages
(``averaged_from``), else from ``checkpoints/last.pt``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import load_file
from asrkit.experiment_dir import LAST_CHECKPOINT, ExperimentDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentInfo:
    name: str
    path: Path
    checkpoint: str | None = None
    params: int | None = None
    epochs: int | None = None
    train_hours: float | None = None


def load_checkpoint_light(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, memory-mapped where possible (weights are not read)."""
    return load_file(path, mmap=True)


def count_model_parameters(config: dict[str, Any], source: str = "config",
                           trusted_modules: Sequence[str] = ()) -> int | None:
    """Parameters of the model a resolved training config builds (None if it cannot). The
    config comes from a file (``source``): every ``_target_`` is checked first
    (asrkit.models.trusted_targets) and anything else raises UntrustedTargetError."""
    from asrkit.models.build import build_model, check_model_config
    from asrkit.models.param_count import count_parameters
    from asrkit.models.trusted_targets import check_trusted

    check_trusted(config, source, trusted_modules)
    try:  # import the builders outside the meta device (asrkit.training.preflight)
        check_model_config(config)
    except (ValueError, ImportError) as e:
        log.warning("%s: cannot count the model's parameters (%s)", source, e)
        return None
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                model = build_model(config)
        except (ValueError, TypeError, RuntimeError, NotImplementedError, ImportError) as e:
            # a builder that needs real tensors: try on the CPU, else give up
            log.debug("cannot build the model on %s to count parameters: %s", device, e)
            continue
        return int(count_parameters(model)["total"])
    return None


def experiment_info(exp_dir: str | Path, name: str, checkpoint: str | None,
                    trusted_modules: Sequence[str] = ()) -> ExperimentInfo:
    """Info from ``checkpoint`` (a name as recorded in wer.json); missing parts stay None."""
    exp_dir = Path(exp_dir)
    if checkpoint is None:
        return ExperimentInfo(name, exp_dir)
    path = ExperimentDir(exp_dir).checkpoint_path(checkpoint)
    try:
        data = load_checkpoint_light(path) if path is not None else None
    except (OSError, RuntimeError, ValueError, EOFError) as e:
        log.warning("%s: unreadable (%s); its parameters, epochs and hours are left out", path, e)
        data = None
    if not isinstance(data, dict):
        return ExperimentInfo(name, exp_dir, checkpoint)
    params = data.get("num_params")
    if params is None and isinstance(data.get("config"), dict):
        params = count_model_parameters(data["config"], str(path), trusted_modules)
    epoch, hours = _epochs(data), _hours(data)
    if epoch is None or hours is None:
        source = _training_source(exp_dir, data)
        if source is not None:
            epoch = _epochs(source) if epoch is None else epoch
            hours = _hours(source) if hours is None else hours
    return ExperimentInfo(name, exp_dir, checkpoint, params, epoch, hours)


def _epochs(data: dict[str, Any]) -> int | None:
    """Epochs completed: ``epoch`` (1-based), one less for a mid-epoch step checkpoint."""
    epoch = data.get("epoch")
    if epoch is None:
        return None
    return int(epoch) - (1 if data.get("epoch_complete") is False else 0)


def _hours(data: dict[str, Any]) -> float | None:
    hours = data.get("train_hours", (data.get("metrics") or {}).get("train_hours"))
    return None if hours is None else float(hours)


def _training_source(exp_dir: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """For an averaged checkpoint: the newest checkpoint it averages, else last.pt."""
    names = list(data.get("averaged_from") or [])
    names.sort(key=_epoch_of_name)
    candidates = [Path(n).name for n in reversed(names)] + [LAST_CHECKPOINT]
    for candidate in candidates:
        for path in (ExperimentDir(exp_dir).checkpoint_dir / candidate, exp_dir / candidate):
            if path.is_file():
                try:
                    return load_checkpoint_light(path)
                except (OSError, RuntimeError, ValueError, EOFError) as e:
                    log.warning("%s: unreadable (%s); trying an older checkpoint", path, e)
    return None


def _epoch_of_name(name: str) -> int:
    match = re.search(r"(\d+)", Path(name).stem)
    return int(match.group(1)) if match else -1


def short_names(paths: list[Path]) -> list[str]:
    """Display names: the directory names, or the paths where two directory names clash."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]
