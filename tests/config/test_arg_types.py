"""asrkit.arg_types.check_value against hand-picked values, and the signature check of
``_target_`` sections (asrkit.config.targets) that uses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import pytest

from asrkit.arg_types import (
    Ge,
    OneOf,
    PositiveFloat,
    PositiveInt,
    Probability,
    UnitInterval,
    check_value,
)
from asrkit.config import ConfigError
from asrkit.config.targets import check_section


@pytest.mark.parametrize("value, annotation, error", [
    (3, PositiveInt, None),
    (0, PositiveInt, "must be > 0, got 0"),
    (True, int, "must be an integer, got True"),
    (2.5, int, "must be an integer, got 2.5"),
    (2, float, None),
    ("abc", float, "must be a number, got 'abc'"),
    (None, PositiveFloat | None, None),
    (None, int, "must not be null"),
    (0.0, PositiveFloat | None, "must be > 0, got 0.0"),
    (1.0, Probability, "must be < 1, got 1.0"),
    (1.0, UnitInterval, None),
    ([1, 0.5], Sequence[int | float], None),
    ("ab", Sequence[int | float], "must be a list, got 'ab'"),
    ([1, "a"], list[int], "has an item that must be an integer, got 'a'"),
    ("x", int | float, "must be a number, got 'x'"),
    ("fp8", Annotated[str, OneOf("auto", "fp32")], "must be one of auto, fp32, got 'fp8'"),
    (True, Annotated[object, OneOf("auto", True, False)], None),
    (-1, Annotated[int, Ge(0)], "must be >= 0, got -1"),
    # a union: the range its value's own type misses, not a list of types
    (-1, PositiveFloat | Sequence[PositiveFloat], "must be > 0, got -1"),
    ([2, -3], PositiveFloat | Sequence[PositiveFloat], "has an item that must be > 0, got -3"),
    ("a", PositiveFloat | Sequence[PositiveFloat], "must be a number, got 'a'"),
])
def test_check_value(value, annotation, error):
    assert check_value(value, annotation) == error


def _builder(width: PositiveInt, rate: Probability = 0.1, name: str = "a") -> None:
    """A stand-in builder for the signature check."""


TARGET = f"{__name__}._builder"


@pytest.mark.parametrize("section, message", [
    ({"width": 2}, None),
    ({"width": 2.5}, "enc.width: must be an integer, got 2.5"),
    ({"width": -1}, "enc.width: must be > 0, got -1"),
    ({"width": 2, "rate": "abc"}, "enc.rate: must be a number, got 'abc'"),
    ({"width": 2, "rat": 0.1}, (f"enc.rat: not an option of {TARGET} (did you mean rate?) "
                                "(options: width, rate, name)")),
    ({}, f"enc.width: missing (required by {TARGET})"),
])
def test_target_sections_are_checked_against_the_annotated_signature(section, message):
    section = {"_target_": TARGET, **section}
    if message is None:
        check_section(section, "enc")
        return
    with pytest.raises(ConfigError) as error:
        check_section(section, "enc")
    assert str(error.value) == message


def test_an_unloadable_target_is_named():
    with pytest.raises(ConfigError, match=r"^enc\._target_: cannot load 'no.such.Thing'"):
        check_section({"_target_": "no.such.Thing"}, "enc")
