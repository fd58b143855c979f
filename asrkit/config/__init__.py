"""Composing the Hydra config tree (`conf/`) into checked, plain Python containers.

    from asrkit.config import compose_config
    config = compose_config("train", ["+experiment=synth/conformer", "trainer.max_epochs=3"])

The sections without a builder (``trainer``, ``data``, ``tokenizer``, the decode options)
are typed by dataclass schemas registered in Hydra's ConfigStore (asrkit.config.store):
Hydra checks every value's type while composing, ``check_schema`` its range. A bad key or
value is a ``ConfigError`` whose one-line message starts with the full key, with "did you
mean" for a misspelt one (asrkit.config.errors). Sections that name a builder with
``_target_`` are checked against the builder's signature by their users
(asrkit.config.targets).

``config_dirs`` adds directories to Hydra's search path (``asrkit train --config-dir DIR``;
asrkit.config.search_path takes the option out of a command line): a YAML file there can add
a group option, e.g. ``DIR/encoder/mine.yaml`` for ``encoder=mine``. Entry points turn
configs into plain dicts before anything heavy starts, and report ``CONFIG_ERRORS`` as one
line (``one_line``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asrkit.config.errors import explain
from asrkit.config.paths import config_dir
from asrkit.config.suggest import did_you_mean
from asrkit.config.validate import ConfigError, check_schema

CONFIG_ERRORS = (HydraException, OmegaConfBaseException, ValueError, OSError, ImportError)

__all__ = ["CONFIG_ERRORS", "ConfigError", "compose_config", "compose_train_config",
           "config_dir", "one_line"]


def _searchpath(config_dirs: Sequence[str | Path]) -> list[str]:
    for directory in config_dirs:
        if not Path(directory).is_dir():
            raise ConfigError(f"--config-dir: {directory} is not a directory")
    if not config_dirs:
        return []
    paths = ",".join(f"file://{Path(d).resolve()}" for d in config_dirs)
    return [f"hydra.searchpath=[{paths}]"]


def compose_node(name: str, overrides: Sequence[str],
                 config_dirs: Sequence[str | Path] = ()) -> DictConfig:
    """conf/<name>.yaml with Hydra ``overrides`` applied, schema-checked for type (not yet
    for range); any composition error is turned into a one-line ConfigError."""
    from asrkit.config.store import register_schemas

    register_schemas()
    searchpath = _searchpath(config_dirs)

    def attempt(these: Sequence[str]) -> DictConfig:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=name, overrides=[*these, *searchpath])

    try:
        return attempt(overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(explain(e, list(overrides), attempt)) from None
    except yaml.YAMLError as e:  # a malformed file of conf/ or a --config-dir
        raise ConfigError(_malformed_yaml(e, [config_dir(), *config_dirs])) from None


def _malformed_yaml(error: yaml.YAMLError, directories: Sequence[str | Path]) -> str:
    """One line naming the YAML file that does not parse (found by reading each of the
    config directories' files again: the parser's own error names no file)."""
    for directory in directories:
        for path in sorted(Path(directory).rglob("*.yaml")):
            try:
                yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                return f"{path}: not valid YAML ({one_line(e)})"
    return f"a config file is not valid YAML ({one_line(error)})"


def compose_config(name: str, overrides: Sequence[str],
                   config_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """conf/<name>.yaml with ``overrides`` applied, checked against its schema (types and
    ranges), resolved into plain containers."""
    cfg = compose_node(name, overrides, config_dirs)
    check_node(cfg)
    return OmegaConf.to_container(cfg, resolve=True)


def check_node(cfg: DictConfig) -> None:
    """Keys, ranges and cross-checks of every schema-typed section of a composed config."""
    check_known_keys(cfg, "")
    try:
        schema = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:  # e.g. an interpolation that does not resolve
        raise ConfigError(one_line(e)) from None
    check_schema(schema, "")


def check_known_keys(node: DictConfig, prefix: str) -> None:
    """Every key of a schema-typed node is a field of its dataclass (Hydra's ``+key=value``
    adds keys past the schema; they would be silently ignored)."""
    schema = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) \
        else None
    for key in node:
        path = f"{prefix}.{key}".lstrip(".")
        if fields is not None and key not in fields:
            raise ConfigError(f"{path}: unknown key{did_you_mean(str(key), sorted(fields))}")
        child = node._get_node(key)
        if isinstance(child, DictConfig) and fields is not None:
            check_known_keys(child, path)


def compose_train_config(overrides: Sequence[str],
                         config_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """conf/train.yaml with ``overrides`` applied, as checked plain containers. A section
    whose group is chosen on the command line keeps only the keys its builder takes, unless
    typed there too (see ``drop_foreign_keys``)."""
    config = compose_config("train", overrides, config_dirs)
    drop_foreign_keys(config, overrides)
    return config


def drop_foreign_keys(config: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    """``+experiment=synth/conformer encoder=transformer``: the preset's ``encoder:`` keys
    merge into the Transformer's section, and ``kernel_size`` is no option of a
    Transformer. For a ``_target_`` section whose group (``encoder=...``) is chosen on the
    command line, keys its builder does not take are left out with a warning, unless the
    command line sets them itself (``encoder.kernel_size=15`` stays, and fails the check).
    Returns the dotted keys left out."""
    from asrkit.config.targets import signature_parameters

    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides if "=" in o]
    chosen = [k for k in keys if "." not in k and "/" not in k]
    dropped = []
    for group in chosen:
        section = config.get(group)
        if not isinstance(section, dict) or not isinstance(section.get("_target_"), str):
            continue
        params = signature_parameters(section["_target_"])
        if not params:
            continue
        for key in [k for k in section if not k.startswith("_") and k not in params]:
            if f"{group}.{key}" not in keys:
                del section[key]
                dropped.append(f"{group}.{key}")
    if dropped:
        logging.getLogger(__name__).warning(
            "left out %s: set by a preset, but no option of the %s chosen on the command line",
            ", ".join(dropped), ", ".join(sorted({k.split(".")[0] for k in dropped})))
    return dropped


def one_line(error: BaseException) -> str:
    """An exception's message on one line, for command-line errors."""
    return " ".join(str(error).split())
