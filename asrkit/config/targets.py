"""Config sections that name their builder with ``_target_`` (encoder, decoder, model, optim,
scheduler, search methods): the builder's annotated signature is the section's schema.

    check_section({"_target_": "asrkit.models.encoders.conformer.ConformerEncoder",
                   "num_layers": 2.5}, "encoder")
    # ConfigError: encoder.num_layers: must be an integer, got 2.5

A key the builder does not take, a missing required argument, a value of the wrong type or
outside the range its annotation states (asrkit.arg_types: ``PositiveInt``,
``Probability``, ...) fails before anything is built, naming ``<section>.<key>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from hydra.utils import get_object

from asrkit.arg_types import check_value, resolved_hints
from asrkit.config.suggest import did_you_mean
from asrkit.config.validate import ConfigError


def load_target(target: str, name: str) -> Any:
    try:
        return get_object(target)
    except Exception as e:  # any import or lookup failure is a config error, named
        raise ConfigError(f"{name}._target_: cannot load {target!r}: "
                          f"{' '.join(str(e).split())}") from e


def signature_parameters(target: str) -> list[str]:
    """The keyword parameters of the builder ``target`` names ([] if it cannot be loaded)."""
    try:
        params = inspect.signature(load_target(target, "_")).parameters
    except (ConfigError, TypeError, ValueError):
        return []
    return [k for k, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)]


def check_section(section: Mapping[str, Any], name: str, filled_in: tuple[str, ...] = ()) -> None:
    """Check ``section`` (with ``_target_``) against its target's signature and annotations.

    Raises ConfigError naming ``<name>.<key>`` for a key the target does not take, a key the
    builder fills in itself, a required argument that is missing, or a value that does not
    fit the parameter's annotation."""
    if not isinstance(section, Mapping):
        raise ConfigError(f"{name}: must be a mapping, got {section!r}")
    if "_target_" not in section:
        raise ConfigError(f"{name}: no _target_ (the class or function to build)")
    target = section["_target_"]
    builder = load_target(target, name)
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    keys = [k for k in section if not k.startswith("_")]
    for key in keys:
        if key in filled_in:
            raise ConfigError(f"{name}.{key}: set by the model builder, remove it")
        if key not in params and not takes_any:
            known = [k for k in params if k not in filled_in and k != "self"]
            raise ConfigError(f"{name}.{key}: not an option of {target}"
                              f"{did_you_mean(key, known)} (options: {', '.join(known)})")
    for key, param in params.items():
        required = param.default is inspect.Parameter.empty and param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if required and key not in keys and key not in filled_in and key != "self":
            raise ConfigError(f"{name}.{key}: missing (required by {target})")
    hints = resolved_hints(builder)
    for key in keys:
        if key in hints and (error := check_value(section[key], hints[key])) is not None:
            raise ConfigError(f"{name}.{key}: {error}")
