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

from asrkit.checkpoint_io import load_verified
from asrkit.models.asr_model import ASRModel
from asrkit.models.build import build_model
from asrkit.models.trusted_targets import check_trusted


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict; raises ValueError naming the file if it is not one of ours, and
    CorruptCheckpointError (a ValueError) if its bytes differ from its recorded hash
    (asrkit.checkpoint_io; a file without a hash file loads unverified)."""
    checkpoint = load_verified(path)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "config" not in checkpoint:
        raise ValueError(f"{path}: not an asrkit checkpoint (needs 'model' and 'config' entries)")
    return checkpoint


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
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, config
