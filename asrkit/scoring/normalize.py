"""Configurable text normalisation applied to references and hypotheses before scoring.

Two knobs, as users of sclite/ESPnet scoring expect:

- ``case``: ``keep`` (default; scoring is case-sensitive), ``lower`` or ``upper``;
- ``punctuation``: ``keep`` (default) or ``remove``: apostrophes are deleted inside words
  (``don't`` -> ``dont``), every other Unicode punctuation character (category ``P*``)
  becomes a space, so ``well-known`` -> ``well known``.

Whitespace is always collapsed. ``describe()`` is printed beside every score so that a
number never travels without the normalisation it was computed under.

    norm = TextNormalizer(case="lower", punctuation="remove")
    norm("Hello, World!")   # 'hello world'
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

CASES = ("keep", "lower", "upper")
PUNCTUATION = ("keep", "remove")
APOSTROPHES = "'\u2019"
# the words accepted by `asrkit score --normalize`
OPTION_WORDS = {"none": {}, "lower": {"case": "lower"}, "upper": {"case": "upper"},
                "nopunct": {"punctuation": "remove"}}


@dataclass(frozen=True)
class TextNormalizer:
    case: str = "keep"
    punctuation: str = "keep"

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"normalize.case: {self.case!r} is not one of {', '.join(CASES)}")
        if self.punctuation not in PUNCTUATION:
            raise ValueError(f"normalize.punctuation: {self.punctuation!r} is not one of "
                             f"{', '.join(PUNCTUATION)}")

    def __call__(self, text: str) -> str:
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        if self.punctuation == "remove":
            text = "".join(_strip_punctuation(ch) for ch in text)
        return " ".join(text.split())

    def describe(self) -> str:
        """One line for reports, e.g. ``case lower, punctuation removed`` or ``none``."""
        parts = []
        if self.case != "keep":
            parts.append(f"case {self.case}")
        if self.punctuation == "remove":
            parts.append("punctuation removed")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None) -> TextNormalizer:
        """From a config section ``{case: ..., punctuation: ...}``; unknown keys fail by name."""
        config = dict(config or {})
        unknown = set(config) - {"case", "punctuation"}
        if unknown:
            raise ValueError(f"normalize.{min(unknown)}: unknown option "
                             "(options: case, punctuation)")
        return cls(**config)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> TextNormalizer:
        """From command-line words: any of ``none lower upper nopunct`` (comma or space
        separated), e.g. ``["lower", "nopunct"]``."""
        options: dict[str, str] = {}
        for word in (w for item in words for w in item.split(",") if w):
            if word not in OPTION_WORDS:
                raise ValueError(f"--normalize: unknown option {word!r} "
                                 f"(known: {', '.join(OPTION_WORDS)})")
            options.update(OPTION_WORDS[word])
        return cls(**options)


def _strip_punctuation(ch: str) -> str:
    if ch in APOSTROPHES:
        return ""
    return " " if unicodedata.category(ch).startswith("P") else ch
