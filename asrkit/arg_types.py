"""Constrained argument types: a value's type and range, written once where it is defined.

The same annotations serve the typed config schemas (asrkit.config: dataclasses that
OmegaConf checks for type, then ``check_value`` for range) and the builders that configs
name with ``_target_`` (an encoder's ``num_layers: PositiveInt``), whose signatures the
config check reads before anything is built:

    def __init__(self, d_model: PositiveInt, dropout: Probability = 0.1) -> None: ...

    check_value(-3, PositiveInt)   # -> "must be > 0, got -3"
    check_value("abc", float)      # -> "must be a number, got 'abc'"

Markers (``Gt``, ``Ge``, ``Lt``, ``Le``, ``OneOf``) ride in ``typing.Annotated``; OmegaConf
ignores them and checks only the base type. This module imports nothing of asrkit's, so
every layer may use it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union


@dataclass(frozen=True)
class Gt:
    bound: float

    def error(self, value: Any) -> str | None:
        return None if value > self.bound else f"must be > {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class Ge:
    bound: float

    def error(self, value: Any) -> str | None:
        return None if value >= self.bound else f"must be >= {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class Lt:
    bound: float

    def error(self, value: Any) -> str | None:
        return None if value < self.bound else f"must be < {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class Le:
    bound: float

    def error(self, value: Any) -> str | None:
        return None if value <= self.bound else f"must be <= {self.bound:g}, got {value!r}"


@dataclass(frozen=True)
class OneOf:
    choices: tuple

    def __init__(self, *choices: Any) -> None:
        object.__setattr__(self, "choices", choices)

    def error(self, value: Any) -> str | None:
        if value in self.choices:
            return None
        names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in self.choices)
        return f"must be one of {names}, got {value!r}"


PositiveInt = Annotated[int, Gt(0)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]
Probability = Annotated[float, Ge(0), Lt(1)]  # dropout rates: 1 would drop everything
UnitInterval = Annotated[float, Ge(0), Le(1)]  # weights and shares in [0, 1]
Seed = Annotated[int, Ge(0), Le(2**32 - 1)]    # numpy's seed range

_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number",
               str: "a string"}
_TYPE_ERRORS = tuple(f"must be {name}," for name in [*_TYPE_NAMES.values(), "a list",
                                                      "a mapping"])


def check_value(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` (a message without the key), or None.

    Understood: int, float (an int is a number too), bool, str, Optional/unions, Literal,
    lists/sequences/tuples of those, mappings, Annotated with the markers above; anything
    else (a module, ``Any``) accepts every value."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *markers = typing.get_args(annotation)
        error = check_value(value, base)
        if error is None and value is not None:
            for marker in markers:
                error = marker.error(value) if hasattr(marker, "error") else None
                if error:
                    break
        return error
    if origin in (Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None:
            return None if type(None) in options else "must not be null"
        errors = [check_value(value, option) for option in options if option is not type(None)]
        if any(e is None for e in errors):
            return None
        # an option of the value's type whose range it misses says more than a type list
        in_range = [e for e in errors if not e.startswith(_TYPE_ERRORS)]
        if in_range:
            return in_range[0]
        return errors[0] if len(errors) == 1 else f"{_describe(annotation)}, got {value!r}"
    if origin is Literal:
        choices = typing.get_args(annotation)
        return None if value in choices else (
            f"must be one of {', '.join(map(str, choices))}, got {value!r}")
    if value is None:
        return "must not be null" if annotation in _TYPE_NAMES else None
    if annotation is bool:
        return None if isinstance(value, bool) else f"must be a boolean (true/false), got {value!r}"
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, got {value!r}"
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value!r}"
    if annotation is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r}"
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
            return f"must be a list, got {value!r}"
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            for item in value:
                if (error := check_value(item, args[0])) is not None:
                    return f"has an item that {error}"
        return None
    if origin in (dict, Mapping) or annotation in (dict,):
        return None if isinstance(value, Mapping) else f"must be a mapping, got {value!r}"
    return None


def _describe(annotation: Any) -> str:
    names = [_TYPE_NAMES.get(typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a)
             for a in typing.get_args(annotation) if a is not type(None)]
    names = [n for n in names if n]
    if _TYPE_NAMES[float] in names and _TYPE_NAMES[int] in names:
        names.remove(_TYPE_NAMES[int])  # an integer is a number
    return f"must be {' or '.join(names)}" if names else "has the wrong type"


def resolved_hints(target: Any) -> dict[str, Any]:
    """The type hints of a class's ``__init__`` or a function, with Annotated markers kept;
    {} when they cannot be resolved (then nothing is type-checked)."""
    function = target.__init__ if isinstance(target, type) else target
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        function = target  # the fields' annotations
    try:
        return typing.get_type_hints(function, include_extras=True)
    except (NameError, TypeError, AttributeError):  # unresolvable annotations: check nothing
        return {}
