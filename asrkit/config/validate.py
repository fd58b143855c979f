"""Range and cross-field checks of a schema-typed config section.

OmegaConf checks each value's base type while the config is composed (``max_epochs=abc``
fails there); ``check_schema`` then walks the section's dataclass instance and checks each
value against its annotation's markers (asrkit.arg_types: ``PositiveInt``, ``OneOf``, ...)
and each dataclass's ``cross_check()`` (rules between keys of one section). Errors name
the full dotted key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from asrkit.arg_types import check_value, resolved_hints


class ConfigError(ValueError):
    """A config key is unknown or has a bad value; the message starts with the full key."""


def check_schema(obj: Any, prefix: str) -> None:
    """Raise ConfigError for the first value of dataclass instance ``obj`` (the section at
    ``prefix``) outside its annotated range, or the first failed cross-check."""
    hints = resolved_hints(type(obj))
    for spec in dataclasses.fields(obj):
        key, value = f"{prefix}.{spec.name}".lstrip("."), getattr(obj, spec.name)
        if dataclasses.is_dataclass(value):
            check_schema(value, key)
        elif (error := check_value(value, hints.get(spec.name, Any))) is not None:
            raise ConfigError(f"{key}: {error}")
    for name, message in getattr(obj, "cross_check", list)():
        raise ConfigError(f"{prefix}.{name}: {message}".lstrip("."))
