"""Composing the Hydra config tree (`conf/`) into plain Python containers.

    from asrkit.config import compose_config
    config = compose_config("train", ["+experiment=synth/conformer", "trainer.max_epochs=3"])

Entry points turn configs into plain dicts before anything heavy starts, and
report `CONFIG_ERRORS` as one line (`one_line`) naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import asrkit

CONFIG_ERRORS = (HydraException, OmegaConfBaseException, ValueError, OSError, ImportError)


def config_dir() -> Path:
    """The absolute path of the repository's `conf/` directory (next to the package)."""
    return (Path(asrkit.__file__).resolve().parent.parent / "conf").resolve()


def compose_config(name: str, overrides: list[str]) -> dict[str, Any]:
    """conf/<name>.yaml with Hydra `overrides` applied, resolved into plain containers."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def compose_train_config(overrides: list[str]) -> dict[str, Any]:
    """conf/train.yaml with `overrides` applied, as plain containers."""
    return compose_config("train", overrides)


def resolve_vocab_size(config: dict[str, Any]) -> int:
    """`vocab_size` if set, else the vocabulary size of the tokenizer in `tokenizer.dir`."""
    if config.get("vocab_size") is not None:
        return int(config["vocab_size"])
    tokenizer_dir = (config.get("tokenizer") or {}).get("dir")
    if tokenizer_dir is None:
        raise ValueError("no output size: set vocab_size=N or tokenizer.dir=<tokenizer directory>")
    from asrkit.text.tokenizer import load_tokenizer

    return int(load_tokenizer(tokenizer_dir).vocab_size)


def one_line(error: BaseException) -> str:
    """An exception's message on one line, for command-line errors."""
    return " ".join(str(error).split())
