"""The checks of a training config that span sections, run before anything heavy starts.

Each section's keys, types and ranges were checked when the config was composed (the
dataclass schemas of asrkit.config) and the ``_target_`` sections are checked against their
builders' signatures here (asrkit.config.targets). What remains needs more than one section
or the disk, and fails in about a second, naming the key:

    data.train: file not found: data/synth/trian.jsonl
    data.cmvn: data/synth/cmvn.json holds statistics of 80 mel bins but ...
    vocab_size: 60 differs from the 100 units of the tokenizer in data/synth/bpe100
    trainer.mwer.enabled: MWER fine-tuning needs an attention decoder

The model is built on the ``meta`` device (no memory, no time) and the optimiser against
it, so impossible shapes and optimiser arguments fail here too, before ``exp_dir`` is
touched. ``hydra.*`` overrides are refused (``reject_hydra_overrides``): ``asrkit train``
composes the config with Hydra's compose API and never runs Hydra's launcher, so
``hydra.run.dir`` and the like would be silently ignored; the run directory is ``exp_dir``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asrkit.cli_checks import out_dir_problem
from asrkit.config import ConfigError, one_line
from asrkit.config.targets import check_section


def _fail(key: str, message: str) -> None:
    raise ConfigError(f"{key}: {message}")


def _existing(path: Any, key: str, kind: str = "file") -> None:
    if not path:
        _fail(key, f"required: set {key}=<path>")
    exists = Path(path).is_file() if kind == "file" else Path(path).is_dir()
    if not exists:
        _fail(key, f"{kind} not found: {path}")


def reject_hydra_overrides(overrides: list[str]) -> None:
    """``hydra.*`` / ``hydra/...`` overrides would be ignored (module docstring): refuse them."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            _fail(key, "asrkit train does not use Hydra's run directory or launcher; the run "
                       "directory is exp_dir (set exp_dir=<dir>; -m sweeps write "
                       "exp_dir/<n>_<overrides>)")


def check_files(config: Mapping[str, Any]) -> None:
    """The data, tokenizer and checkpoint files the config names exist and fit together."""
    data, trainer = config["data"], config["trainer"]
    exp_dir = Path(config["exp_dir"])
    if (problem := out_dir_problem(exp_dir)) is not None:
        _fail("exp_dir", problem)
    _existing(data.get("train"), "data.train")
    _existing(data.get("dev"), "data.dev")
    if data.get("cmvn") is not None:
        _existing(data["cmvn"], "data.cmvn")
        _cmvn_matches_features(data["cmvn"], data["features"]["num_mel_bins"])
    _existing((config.get("tokenizer") or {}).get("dir"), "tokenizer.dir", "directory")
    resume = trainer["resume"]
    if resume not in ("auto", "none", None) and not Path(str(resume)).is_file():
        _fail("trainer.resume", f"must be auto, none or a checkpoint file; not found: {resume}")
    if trainer.get("init_from") is not None:
        _existing(trainer["init_from"], "trainer.init_from")


def _cmvn_matches_features(path: str, num_mel_bins: int) -> None:
    from asrkit.data.cmvn import GlobalCMVN

    try:
        bins = GlobalCMVN.load(path).mean.numel()
    except ValueError as e:
        _fail("data.cmvn", str(e))
    if bins != num_mel_bins:
        _fail("data.cmvn", f"{path} holds statistics of {bins} mel bins but "
                           f"data.features.num_mel_bins is {num_mel_bins}; recompute them with "
                           f"`asrkit cmvn --num-mel-bins {num_mel_bins}` (recipes: --num_mel_bins "
                           f"{num_mel_bins} --stage 1 --force true)")


def check_vocab_size(config: Mapping[str, Any]) -> int:
    """The output size; a ``vocab_size`` that differs from the tokenizer's is an error."""
    from asrkit.text.registry import load_tokenizer, resolve_vocab_size

    vocab_size = resolve_vocab_size(config)
    tokenizer_dir = (config.get("tokenizer") or {}).get("dir")
    if config.get("vocab_size") is not None and tokenizer_dir:

        actual = load_tokenizer(tokenizer_dir).vocab_size
        if actual != config["vocab_size"]:
            _fail("vocab_size", f"{config['vocab_size']} differs from the {actual} units of the "
                                f"tokenizer in {tokenizer_dir}; leave vocab_size=null")
    return vocab_size


def check_model_and_optimizer(config: Mapping[str, Any], vocab_size: int) -> None:
    """Build the model on the meta device, then the optimiser against it."""
    import torch

    from asrkit.models.build import build_model, check_model_config
    from asrkit.training.optim import build_optimizer

    check_section(config["scheduler"], "scheduler", ("optimizer",))
    # imports the builders' modules first: a module that makes a tensor when imported (as
    # torchaudio.compliance.kaldi does) must not make it on the meta device
    check_model_config(config)
    with torch.device("meta"):
        model = build_model(config, vocab_size)
    try:
        build_optimizer(config["optim"], model)
    except (ValueError, TypeError) as e:
        message = one_line(e)
        raise ConfigError(message if message.startswith("optim") else f"optim: {message}") from None
    if config["trainer"]["mwer"]["enabled"] and model.decoder is None:
        _fail("trainer.mwer.enabled", "MWER fine-tuning needs an attention decoder "
                                      "(this model has decoder=none)")


def check_train_config(config: Mapping[str, Any], check_disk: bool = True) -> int:
    """Raise ConfigError naming the first bad key of a composed (schema-checked) training
    config; returns the vocabulary size. ``check_disk=False`` skips the files."""
    from asrkit.data.features import FbankExtractor

    try:
        FbankExtractor.from_config(config["data"])
    except ValueError as e:  # a frame shorter than a sample
        raise ConfigError(str(e)) from None
    if check_disk:
        check_files(config)
    vocab_size = check_vocab_size(config)
    check_model_and_optimizer(config, vocab_size)
    return vocab_size
