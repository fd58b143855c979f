"""Loading a model from a checkpoint file, for decoding and fine-tuning.

A checkpoint (written by asrkit.training) is a dict saved with `torch.save` holding only
plain data, so it loads with `torch.load(weights_only=True)`:

    {"model": state_dict, "config": the resolved training config (plain dict, with
     "vocab_size" filled in), ...training state (optimizer, scheduler, sampler, rng,
     epoch, step, metrics) or, for averaged weights, "averaged_from": [file names]}

    from asrkit.models.checkpoint import load_model
    model, config = load_model("exp/conformer/avg_10.pt")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import CorruptCheckpointError, load_verified
from asrkit.models.asr_model import ASRModel
from asrkit.models.build import build_model
from asrkit.models.trusted_targets import check_trusted


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict; raises ValueError naming the file if it is not one of ours, and
    CorruptCheckpointError (a ValueError) if its bytes differ from its recorded hash
    (asrkit.checkpoint_io; a file without a hash file loads unverified) or its content is
    not what asrkit writes (weights that are not tensors, a config that is not a mapping of
    mappings)."""
    checkpoint = load_verified(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not an asrkit checkpoint (needs 'model' and 'config' entries)")
    problem = weights_problem(checkpoint["model"]) or config_problem(checkpoint["config"])
    if problem:  # its content, not the command, is at fault: as corrupt bytes (exit 1)
        raise CorruptCheckpointError(f"{path}: not an asrkit checkpoint ({problem})")
    return checkpoint


CONFIG_SECTIONS = ("encoder", "decoder", "transducer", "model", "tokenizer", "data")


def weights_problem(weights: Any) -> str | None:
    """Why a checkpoint's ``model`` entry is not a state dict (names to tensors), or None."""
    if not isinstance(weights, dict):
        return f"its 'model' is a {type(weights).__name__}, not a mapping of names to tensors"
    for name, value in weights.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            return f"its 'model' maps {name!r} to a {type(value).__name__}, not a tensor"
    return None


def config_problem(config: Any, path: str = "config") -> str | None:
    """Why a stored config is not the plain mapping asrkit writes (string keys throughout,
    each section a mapping or null), or None."""
    if not isinstance(config, dict):
        return f"{path} is a {type(config).__name__}, not a mapping"
    for key, value in config.items():
        if not isinstance(key, str):
            return f"{path} has a key {key!r} that is not a string"
        if path == "config" and key in CONFIG_SECTIONS and not isinstance(value, (dict, type(None))):
            return f"config.{key} is a {type(value).__name__}, not a mapping"
        if isinstance(value, dict) and (problem := config_problem(value, f"{path}.{key}")):
            return problem
    return None


def load_model(
    path: str | Path, trusted_modules: Sequence[str] = (),
) -> tuple[ASRModel, dict[str, Any]]:
    """Build the model the checkpoint's config describes and load its weights (eval mode,
    on the CPU: move it where it runs).
    Every ``_target_`` of the stored config must be an asrkit building block, or in one of
    ``trusted_modules`` (asrkit.models.trusted_targets); it is checked before anything is
    imported or called."""
    checkpoint = read_checkpoint(path)
    config = checkpoint["config"]
    check_trusted(config, str(path), trusted_modules)
    model = build_model(config)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as e:  # "Error(s) in loading state_dict ...": the first mismatch
        detail = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
        raise CorruptCheckpointError(f"{path}: its weights do not fit the model its config "
                                     f"describes ({detail})") from None
    model.eval()
    return model, config
