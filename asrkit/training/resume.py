"""Starting from weights or a checkpoint: ``trainer.init_from`` and ``trainer.resume``.

``init_from`` (a new run from another model, e.g. fine-tuning) loads every tensor whose name
and shape match and reports the rest; optimiser, schedule and position start afresh.
``resume`` continues a run: model, optimiser, schedule, GradScaler, counters, the sampler's
position (mid-epoch checkpoints) and the RNG states of every rank. Resuming on another
number of ranks works from epoch checkpoints; a mid-epoch checkpoint then restarts its epoch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from asrkit.checkpoint_io import CorruptCheckpointError, load_verified
from asrkit.models.checkpoint import read_checkpoint
from asrkit.training.checkpoint import newest_checkpoint
from asrkit.training.distributed import DistributedContext
from asrkit.training.training_state import TrainingState

log = logging.getLogger(__name__)

TRAINING_KEYS = ("model", "optimizer")  # what a checkpoint needs to be resumed from


def init_weights_from(model: nn.Module, path: str | Path) -> list[str]:
    """Load the matching tensors of checkpoint ``path`` into ``model``; returns the names
    of the model's tensors left as initialised."""
    state = read_checkpoint(path)["model"]
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ValueError(f"trainer.init_from: {path} has no weights that fit this model")
    model.load_state_dict(matched, strict=False)
    left = sorted(set(own) - set(matched))
    log.info("init_from %s: %d of %d tensors loaded%s", path, len(matched), len(own),
             f"; left as initialised: {', '.join(left[:8])}{' ...' if len(left) > 8 else ''}"
             if left else "")
    return left


def resume_path(resume: str | None, checkpoint_dir: Path) -> Path | None:
    """``trainer.resume``: auto (newest valid checkpoint, None if there is none), none, or
    a file. ``none`` in an experiment that holds checkpoints is an error: the new run's
    epoch_N.pt would replace some of the old run's and leave the others, and the next
    resume or average would mix the two runs."""
    if resume in (None, "none"):
        held = sorted(checkpoint_dir.glob("*.pt")) if checkpoint_dir.is_dir() else []
        if held:
            raise ValueError(f"trainer.resume: none, but {checkpoint_dir} holds another run's "
                             f"checkpoints ({', '.join(p.name for p in held[:3])}"
                             f"{', ...' if len(held) > 3 else ''}); train into another "
                             f"exp_dir, or move that one aside first")
        return None
    return newest_checkpoint(checkpoint_dir) if resume == "auto" else Path(resume)


def check_same_optimiser(saved: dict[str, Any] | None, config: dict[str, Any],
                         path: Path) -> None:
    """A ValueError naming the key when the ``optim`` section differs from the one the
    checkpoint was trained with: resuming loads the optimiser's state, whose rate, betas,
    eps and weight decay would silently replace the new values."""
    old, new = (saved or {}).get("optim"), config.get("optim")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            raise ValueError(f"optim.{key}: {new.get(key)!r} differs from the {old.get(key)!r} "
                             f"that {path} was trained with; a resumed run continues with its "
                             f"optimiser's state, which would override it: resume with "
                             f"'optim.{key}={_override_value(old.get(key))}', or start a new "
                             f"exp_dir from its weights with trainer.init_from={path}")


def _override_value(value: Any) -> str:
    """``value`` as a Hydra override writes it (null, true, [0.9,0.98])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(_override_value, value)) + "]"
    return str(value)


def load_training_state(path: Path) -> dict[str, Any]:
    """The checkpoint dict; a file that does not load or differs from its recorded hash is
    one CorruptCheckpointError naming it, and so is one that is not a training checkpoint
    (an averaged model, a bare state dict: no optimiser state to continue from)."""
    try:
        ckpt = load_verified(path)
    except CorruptCheckpointError as e:
        raise CorruptCheckpointError(f"{e}; resume from another one") from None
    missing = [key for key in TRAINING_KEYS if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise CorruptCheckpointError(
            f"{path}: not a training checkpoint (no {', '.join(missing)}: an averaged model or "
            f"a bare state dict?); resume from checkpoints/, or start from its weights with "
            f"trainer.init_from={path}")
    return ckpt


def restore(ckpt: dict[str, Any], path: Path, model: nn.Module, state: TrainingState,
            ctx: DistributedContext, config: dict[str, Any]) -> str:
    """Load a training checkpoint into the model and the training state (the one place a
    run is restored); returns where it continues. A checkpoint of another model or
    optimiser, or one trained with other ``optim`` values than ``config``'s, is one
    ValueError naming it (check_same_optimiser)."""
    check_same_optimiser(ckpt.get("config"), config, path)
    try:
        model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{path}: cannot resume, the checkpoint is of another model or "
                         f"optimiser ({first}); train into another exp_dir (with "
                         f"trainer.init_from={path} to start from its matching weights)"
                         ) from None
    return state.load_state_dict(ckpt, ctx.rank, ctx.world_size)
