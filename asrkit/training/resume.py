"""Starting from weights or a checkpoint: ``trainer.init_from`` and ``trainer.resume``.

``init_from`` (a new run from another model, e.g. fine-tuning) loads every tensor whose name
and shape match (or those under ``init_modules`` only) and reports the rest; optimiser,
schedule and position start afresh.
``resume`` continues a run: model, optimiser, schedule, GradScaler, counters, the sampler's
position (mid-epoch checkpoints) and the RNG states of every rank. Resuming on another
number of ranks works from epoch checkpoints; a mid-epoch checkpoint then restarts its epoch.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asrkit.checkpoint_io import CorruptCheckpointError, load_verified
from asrkit.experiment_dir import ExperimentDir
from asrkit.models.build import build_model
from asrkit.models.checkpoint import read_checkpoint
from asrkit.text.registry import fingerprint, load_tokenizer
from asrkit.training.checkpoint import list_checkpoints, newest_checkpoint
from asrkit.training.distributed import DistributedContext, broadcast_object
from asrkit.training.schedulers import set_total_steps
from asrkit.training.setup_summary import schedule_length_source
from asrkit.training.training_state import TrainingState

log = logging.getLogger(__name__)

TRAINING_KEYS = ("model", "optimizer")  # what a checkpoint needs to be resumed from


def read_init_source(config: dict[str, Any]) -> dict[str, Any] | None:
    """``trainer.init_from``'s checkpoint, checked against the model ``config`` builds (on
    the meta device, with the units of ``tokenizer.dir``) before the run touches
    ``exp_dir``: a module ``init_modules`` names that it lacks, units of another tokenizer,
    or no weights that fit fail here, as ``init_weights_from`` would. None without
    ``init_from``; pass the result to ``init_weights_from`` (the file is read once)."""
    path = config["trainer"].get("init_from")
    if not path:
        return None
    checkpoint = read_checkpoint(path)
    tokenizer = load_tokenizer(config["tokenizer"]["dir"])
    preview = {**config, "vocab_size": int(tokenizer.vocab_size),
               "tokenizer": {**config["tokenizer"], "fingerprint": fingerprint(tokenizer)}}
    with torch.device("meta"):
        model = build_model(preview)
    _fitting(checkpoint, model.state_dict(), path, preview)
    return checkpoint


def init_weights_from(model: nn.Module, path: str | Path, config: dict[str, Any],
                      checkpoint: dict[str, Any] | None = None) -> list[str]:
    """Load the matching tensors of checkpoint ``path`` (already read: ``checkpoint``) into
    ``model`` (built from the run's ``config``); returns the names of the model's tensors
    left as initialised. ``trainer.init_modules`` (e.g. ["encoder"]) keeps the
    checkpoint's tensors under those names only (WeNet's enc_init_mods); a name under which
    the checkpoint has no tensor is an error. A checkpoint trained with other units of the
    same count (its tokenizer's fingerprint differs from this run's) is refused when a
    tensor indexed by units would load (embeddings, output layers: they would map ids to
    the wrong units; found as the tensors whose shapes follow the vocabulary size); an
    encoder alone loads."""
    own = model.state_dict()
    matched = _fitting(checkpoint or read_checkpoint(path), own, path, config)
    model.load_state_dict(matched, strict=False)
    left = sorted(set(own) - set(matched))
    if not config["trainer"].get("init_modules") and 2 * len(matched) < len(own):
        log.warning("init_from %s: only %d of this model's %d tensors fit it (another "
                    "architecture or size?); the others start as initialised", path,
                    len(matched), len(own))
    log.info("init_from %s: %d of %d tensors loaded%s", path, len(matched), len(own),
             f"; left as initialised: {', '.join(left[:8])}{' ...' if len(left) > 8 else ''}"
             if left else "")
    return left


def _fitting(ckpt: dict[str, Any], own: dict[str, torch.Tensor], path: str | Path,
             config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``ckpt`` that load into a model whose state dict is ``own``."""
    state = _selected(ckpt["model"], config["trainer"].get("init_modules"), path)
    tokenizer = ((ckpt.get("config") or {}).get("tokenizer") or {})
    recorded, size = tokenizer.get("fingerprint"), (ckpt.get("config") or {}).get("vocab_size")
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    this_run = (config.get("tokenizer") or {}).get("fingerprint")
    if recorded and this_run and recorded != this_run and size == config["vocab_size"]:
        by_unit = sorted(set(matched) & unit_indexed(config))
        if by_unit:
            raise ValueError(f"trainer.init_from: {path} was trained with other units of the "
                             f"same count ({size}; tokenizer fingerprint {recorded}, this run's "
                             f"{this_run}): its {by_unit[0]} would map ids to the wrong "
                             "units; train with its tokenizer (tokenizer.dir=<its "
                             "exp_dir>/tokenizer), or load its encoder only "
                             "(trainer.init_modules=[encoder])")
    if not matched:
        raise ValueError(f"trainer.init_from: {path} has no weights that fit this model")
    return matched


def unit_indexed(config: dict[str, Any]) -> set[str]:
    """The names of the model's tensors indexed by units: those whose shapes differ between
    the model ``config`` builds and the same model with one unit more (built on the meta
    device: no memory, no time). A dimension that merely equals the vocabulary size (a
    feed-forward width of 256 beside 256 units) is not one."""
    with torch.device("meta"):
        own = build_model(config).state_dict()
        wider = build_model(config, config["vocab_size"] + 1).state_dict()
    return {k for k, v in own.items() if k not in wider or wider[k].shape != v.shape}


def _selected(state: dict, modules: list[str] | None, path: str | Path) -> dict:
    """The tensors of ``state`` under ``modules`` (None: all)."""
    if modules is None:
        return state
    selected = {}
    for module in modules:
        under = {k: v for k, v in state.items() if k == module or k.startswith(f"{module}.")}
        if not under:
            tops = sorted({k.split(".", 1)[0] for k in state})
            raise ValueError(f"trainer.init_modules: {path} has no tensor under {module!r} "
                             f"(its modules: {', '.join(tops)}; a dotted name such as "
                             "encoder.layers.0 selects part of one)")
        selected.update(under)
    return selected


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


def resume_run(trainer: Any) -> None:
    """``trainer.resume`` for a Trainer once set up (``trainer``: not imported, it imports
    this module): the checkpoint loaded into the model and the training state, a checkpoint
    named explicitly refused when newer ones exist (check_no_newer), and the schedule's
    length fitted to this config (schedule_length, set_total_steps)."""
    checkpoint_dir = ExperimentDir(trainer.exp_dir).checkpoint_dir
    path = broadcast_object(resume_path(trainer.tcfg["resume"], checkpoint_dir), trainer.ctx)
    if path is None:
        return
    state, ckpt = trainer.state, load_training_state(path)
    if trainer.tcfg["resume"] != "auto":
        check_no_newer(path, int(ckpt["step"]), checkpoint_dir)
    where = restore(ckpt, path, trainer.model, state, trainer.ctx, trainer.config)
    if other_batching(ckpt, getattr(state.scheduler, "total_steps", None), trainer):
        done = 0 if state.fresh_epoch else math.ceil(
            state.loader.sampler.position / trainer.tcfg["accum_grad"])
        trainer.total_steps = schedule_length(
            trainer.total_steps, state.step, state.epoch, done, trainer.tcfg["max_epochs"],
            trainer.updates_per_epoch)
    previous_total = set_total_steps(state.scheduler, trainer.total_steps)
    if previous_total is not None:
        log.info("learning-rate schedule: %d updates in the checkpoint's, now %d from this "
                 "config (%s); the next update's rate is %.3e", previous_total,
                 trainer.total_steps, schedule_length_source(trainer.config), state.lr())
    log.info("resumed from %s at %s %d, update %d", path, where, state.epoch, state.step)


def check_same_optimiser(saved: dict[str, Any] | None, config: dict[str, Any],
                         path: Path) -> None:
    """A ValueError naming the key when the ``optim`` or ``scheduler`` section differs from
    the one the checkpoint was trained with: resuming loads the optimiser's and the
    schedule's state, whose rate, betas, eps, weight decay, warm-up and floor would silently
    replace the new values. The schedule's length (``scheduler.total_steps``) may change:
    it is applied (asrkit.training.schedulers.set_total_steps)."""
    for section, free in (("optim", ()), ("scheduler", ("total_steps",))):
        old, new = (saved or {}).get(section), config.get(section)
        if not isinstance(old, dict) or not isinstance(new, dict):
            continue
        for key in sorted((set(old) | set(new)) - set(free)):
            if old.get(key) != new.get(key):
                raise ValueError(
                    f"{section}.{key}: {new.get(key)!r} differs from the {old.get(key)!r} that "
                    f"{path} was trained with; a resumed run continues with its {section}'s "
                    f"state, which would override it: resume with '{section}.{key}="
                    f"{_override_value(old.get(key))}', or start a new exp_dir from its "
                    f"weights with trainer.init_from={path}")


def check_no_newer(path: Path, step: int, checkpoint_dir: Path) -> None:
    """A ValueError when ``trainer.resume`` names a checkpoint while ``checkpoint_dir`` holds
    newer ones (more updates done): the resumed run's checkpoints would sit among those of
    the run it branches from, and pruning (which keeps the newest), ``resume=auto`` and
    ``asrkit average`` would take the old branch's for the newest."""
    newer = [info.path.name for info in list_checkpoints(checkpoint_dir) if info.step > step]
    if newer:
        raise ValueError(f"trainer.resume: {path} is at update {step}, but {checkpoint_dir} "
                         f"holds later checkpoints ({', '.join(newer[:3])}"
                         f"{', ...' if len(newer) > 3 else ''}); move those aside first, or "
                         f"train into another exp_dir with trainer.init_from={path}")


def other_batching(ckpt: dict[str, Any], restored_total: int | None, trainer: Any) -> bool:
    """Whether a resumed schedule whose length follows the epochs was planned from another
    number of updates per epoch than this config's (another max_frames, accum_grad, number
    of ranks or data): its length was not its max_epochs times this run's epoch 1."""
    saved = ckpt.get("config") or {}
    if trainer.config["scheduler"].get("total_steps") or restored_total is None or \
            (saved.get("scheduler") or {}).get("total_steps"):
        return False  # a length given, or none (Noam)
    epochs = (saved.get("trainer") or {}).get("max_epochs")
    return not epochs or restored_total != max(1, epochs * trainer.updates_per_epoch)


def schedule_length(planned: int, step: int, epoch: int, updates_in_epoch: int,
                    max_epochs: int, updates_per_epoch: int) -> int:
    """The schedule's length for a resumed run whose batching changed (other_batching):
    ``planned`` (``max_epochs`` × this config's updates per epoch: the rates of a fresh run
    of that length), unless the updates done (``step``, up to update ``updates_in_epoch``
    of epoch ``epoch``) plus those still to come make more: a schedule shorter than what is
    left to do would train its last epochs at its floor (rate 0). With the batching
    unchanged the length stays ``planned``, so that a resume is exact."""
    remaining = (max_epochs - epoch + 1) * updates_per_epoch - updates_in_epoch
    return max(planned, step + remaining)


MODEL_SECTIONS = ("vocab_size", "encoder", "decoder", "transducer", "model")


def model_difference(saved: dict[str, Any] | None, config: dict[str, Any]) -> str | None:
    """``encoder.d_model: 48 differs from the checkpoint's 32`` for the first key of the
    model's sections that differs (None: none does)."""
    def flat(value: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            return {prefix: value}
        return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}.{key}")
                .items()}

    old = {k: v for s in MODEL_SECTIONS for k, v in flat((saved or {}).get(s), s).items()}
    new = {k: v for s in MODEL_SECTIONS for k, v in flat(config.get(s), s).items()}
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}: {new.get(key)!r} differs from the checkpoint's {old.get(key)!r}"
    return None


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
    run is restored); returns where it continues. A checkpoint of another model (the first
    differing key of the model's config named) or optimiser, or one trained with other
    ``optim`` or ``scheduler`` values than ``config``'s, is one ValueError naming it
    (check_same_optimiser)."""
    check_same_optimiser(ckpt.get("config"), config, path)
    try:
        model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError) as e:
        lines = [line.strip() for line in str(e).strip().splitlines()]
        why = model_difference(ckpt.get("config"), config) or lines[min(1, len(lines) - 1)]
        raise ValueError(f"{path}: cannot resume, the checkpoint is of another model or "
                         f"optimiser ({why}); train into another exp_dir (with "
                         f"trainer.init_from={path} to start from its matching weights)"
                         ) from None
    return state.load_state_dict(ckpt, ctx.rank, ctx.world_size)
