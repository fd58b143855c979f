"""Character units, as WeNet/ESPnet use for Mandarin (AISHELL) and small English tasks.

A space becomes the unit "▁" so that decoding restores word boundaries; text without
spaces (Mandarin) simply never produces it. Units after the three specials are sorted by
descending frequency, then by character, so a vocabulary cap keeps the commonest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from asrkit.text.base import SPECIAL_UNITS, UNITS_FILE, UNK_ID, Tokenizer, TokenizerError

SPACE = "▁"


class CharTokenizer(Tokenizer):
    type = "char"

    def __init__(self, units: list[str]):
        if tuple(units[: len(SPECIAL_UNITS)]) != SPECIAL_UNITS:
            raise TokenizerError(f"char units must start with {SPECIAL_UNITS}, got {units[:3]}")
        self._units = list(units)
        self._ids = {u: i for i, u in enumerate(self._units)}
        self._special = set(range(len(SPECIAL_UNITS)))

    @classmethod
    def train(cls, texts: list[str], vocab_size: int | None = None) -> CharTokenizer:
        counts = Counter(ch for text in texts for ch in _chars(text))
        chars = sorted(counts, key=lambda c: (-counts[c], c))
        if vocab_size is not None:
            if vocab_size <= len(SPECIAL_UNITS):
                raise TokenizerError(f"--vocab-size {vocab_size} leaves no room for characters")
            chars = chars[: vocab_size - len(SPECIAL_UNITS)]
        return cls(list(SPECIAL_UNITS) + chars)

    @classmethod
    def load(cls, directory: Path) -> CharTokenizer:
        path = directory / UNITS_FILE
        if not path.is_file():
            raise TokenizerError(f"{path}: not found")
        units = [line.rsplit(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]
        return cls(units)

    @property
    def units(self) -> list[str]:
        return self._units

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(ch, UNK_ID) for ch in _chars(text)]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [self._units[i] for i in ids if i not in self._special]
        return "".join(pieces).replace(SPACE, " ").strip()

    def _save_model(self, directory: Path) -> dict:
        return {}


def _chars(text: str) -> list[str]:
    return list(SPACE.join(text.split()))
