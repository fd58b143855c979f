"""Everything decoding needs from an experiment directory: the model from a checkpoint, the
tokenizer, CMVN statistics and the feature settings — nothing from the training config tree.

    exp = load_experiment("exp/conformer", None, device="cpu")   # the averaged model
    exp.model, exp.tokenizer, exp.cmvn, exp.extractor

The checkpoint is found by asrkit.experiment_dir (``None``: the experiment's averaged
model, else ``checkpoints/last.pt``). The tokenizer is the experiment's copy
(``exp_dir/tokenizer``), else the ``tokenizer.dir`` the checkpoint's config names; CMVN
likewise ``exp_dir/cmvn.json``, else ``data.cmvn`` (none when the model was trained
without). The tokenizer's fingerprint (a hash of its units, stored with the model) must
match: one of the same size with other units would decode every id to a wrong unit. Feature
settings come from the config's ``data`` section, so decoding computes exactly the training
features (without dither).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import CorruptCheckpointError
from asrkit.config import one_line
from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.experiment_dir import ExperimentDir
from asrkit.models.asr_model import ASRModel
from asrkit.models.checkpoint import load_model
from asrkit.text.base import Tokenizer
from asrkit.text.registry import fingerprint, load_tokenizer


@dataclass
class Experiment:
    exp_dir: Path
    checkpoint: Path
    model: ASRModel
    config: dict[str, Any]
    tokenizer: Tokenizer
    cmvn: GlobalCMVN | None
    extractor: FbankExtractor

    @property
    def checkpoint_label(self) -> str:
        """The checkpoint as results name it (``avg_3.pt``, ``checkpoints/epoch_6.pt``)."""
        return ExperimentDir(self.exp_dir).checkpoint_label(self.checkpoint)


def load_experiment(exp_dir: str | Path, checkpoint: str | None = None,
                    device: str | torch.device = "cpu",
                    trusted_modules: Sequence[str] = ()) -> Experiment:
    """``trusted_modules``: modules of your own whose classes the stored config may name
    (asrkit.models.trusted_targets); any other non-asrkit target is refused."""
    exp = ExperimentDir(exp_dir)
    if not exp.path.is_dir():
        raise FileNotFoundError(f"exp_dir: {exp.path} is not a directory")
    path = exp.default_checkpoint() if checkpoint is None else exp.find_checkpoint(checkpoint)
    model, config = load_model(path, trusted_modules=trusted_modules)
    model.to(device).eval()
    tokenizer_dir = _tokenizer_dir(exp, config)
    tokenizer = load_tokenizer(tokenizer_dir)
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} units but the model in {path} "
                         f"outputs {model.vocab_size}")
    recorded = (config.get("tokenizer") or {}).get("fingerprint")
    if recorded is not None and recorded != fingerprint(tokenizer):
        raise ValueError(f"{tokenizer_dir}: other units than the tokenizer the model in {path} "
                         f"was trained with (fingerprint {fingerprint(tokenizer)}, the model's "
                         f"{recorded}); its ids would decode to the wrong units")
    data = config.get("data") or {}
    try:
        extractor = FbankExtractor.from_config(data)
    except (KeyError, TypeError) as e:  # a foreign or hand-edited config
        raise CorruptCheckpointError(
            f"{path}: its config lacks the feature settings (data.sample_rate, "
            f"data.features.*: {one_line(e)}); not a model asrkit wrote") from None
    return Experiment(exp.path, path, model, config, tokenizer, _cmvn(exp, data), extractor)


def _tokenizer_dir(exp: ExperimentDir, config: dict[str, Any]) -> Path:
    if exp.tokenizer_dir.is_dir():
        return exp.tokenizer_dir
    configured = (config.get("tokenizer") or {}).get("dir")
    if configured is None:
        raise FileNotFoundError(f"{exp.path}: no tokenizer/ directory and the checkpoint's "
                                "config names no tokenizer.dir")
    return Path(configured)


def _cmvn(exp: ExperimentDir, data: dict[str, Any]) -> GlobalCMVN | None:
    if exp.cmvn_file.is_file():
        return GlobalCMVN.load(exp.cmvn_file)
    if data.get("cmvn"):
        return GlobalCMVN.load(data["cmvn"])
    return None
