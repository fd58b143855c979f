"""Everything decoding needs from an experiment directory: the model from a checkpoint, the
tokenizer, CMVN statistics and the feature settings — nothing from the training config tree.

    exp = load_experiment("exp/conformer", "avg_10.pt", device="cpu")
    exp.model, exp.tokenizer, exp.cmvn, exp.extractor

The tokenizer is the experiment's copy (``exp_dir/tokenizer``), else the ``tokenizer.dir``
the checkpoint's config names; CMVN likewise ``exp_dir/cmvn.json``, else ``data.cmvn``
(none when the model was trained without). Feature settings come from the config's ``data``
section, so decoding computes exactly the training features (without dither).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.models.asr_model import ASRModel
from asrkit.models.checkpoint import load_model
from asrkit.text.tokenizer import Tokenizer, load_tokenizer

TOKENIZER_DIR = "tokenizer"
CMVN_FILE = "cmvn.json"
CHECKPOINT_DIR = "checkpoints"


@dataclass
class Experiment:
    exp_dir: Path
    checkpoint: Path
    model: ASRModel
    config: dict[str, Any]
    tokenizer: Tokenizer
    cmvn: GlobalCMVN | None
    extractor: FbankExtractor


def find_checkpoint(exp_dir: str | Path, name: str) -> Path:
    """``name`` as given, in ``exp_dir``, or in ``exp_dir/checkpoints``; FileNotFoundError
    listing the checkpoints that do exist."""
    exp_dir = Path(exp_dir)
    for candidate in (Path(name), exp_dir / name, exp_dir / CHECKPOINT_DIR / name):
        if candidate.is_file():
            return candidate
    found = [str(p.relative_to(exp_dir)) for p in sorted(exp_dir.glob("*.pt"))]
    found += [str(p.relative_to(exp_dir)) for p in sorted(exp_dir.glob(f"{CHECKPOINT_DIR}/*.pt"))]
    raise FileNotFoundError(f"checkpoint: {name!r} not found in {exp_dir} "
                            f"(found: {', '.join(found) or 'none'})")


def load_experiment(exp_dir: str | Path, checkpoint: str,
                    device: str | torch.device = "cpu") -> Experiment:
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise FileNotFoundError(f"exp_dir: {exp_dir} is not a directory")
    path = find_checkpoint(exp_dir, checkpoint)
    model, config = load_model(path, map_location=device)
    model.to(device).eval()
    tokenizer = load_tokenizer(_tokenizer_dir(exp_dir, config))
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} units but the model in {path} "
                         f"outputs {model.vocab_size}")
    data = config.get("data") or {}
    features = data.get("features") or {}
    extractor = FbankExtractor(
        sample_rate=data.get("sample_rate", 16000),
        num_mel_bins=features.get("num_mel_bins", 80),
        frame_length=features.get("frame_length", 25.0),
        frame_shift=features.get("frame_shift", 10.0))
    return Experiment(exp_dir, path, model, config, tokenizer, _cmvn(exp_dir, data), extractor)


def _tokenizer_dir(exp_dir: Path, config: dict[str, Any]) -> Path:
    if (exp_dir / TOKENIZER_DIR).is_dir():
        return exp_dir / TOKENIZER_DIR
    configured = (config.get("tokenizer") or {}).get("dir")
    if configured is None:
        raise FileNotFoundError(f"{exp_dir}: no tokenizer/ directory and the checkpoint's "
                                "config names no tokenizer.dir")
    return Path(configured)


def _cmvn(exp_dir: Path, data: dict[str, Any]) -> GlobalCMVN | None:
    if (exp_dir / CMVN_FILE).is_file():
        return GlobalCMVN.load(exp_dir / CMVN_FILE)
    if data.get("cmvn"):
        return GlobalCMVN.load(data["cmvn"])
    return None
