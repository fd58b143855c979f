"""Tokenizers behind one interface: sentencepiece word pieces (bpe, unigram) or characters.

Ids are fixed for every tokenizer type so that models and decoders never ask:
  0 `<blank>` (CTC blank; never produced by `encode`), 1 `<unk>`, 2 `<sos/eos>`
  (the attention decoder's start and end symbol); real units start at 3.
A tokenizer directory holds `tokenizer.json` (type and sizes), `units.txt` (`<piece> <id>`
per line, as WeNet writes it) and the type's own model file; it is self-contained, so an
experiment directory can carry a copy.
"""

from __future__ import annotations

import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

BLANK_ID = 0
UNK_ID = 1
SOS_EOS_ID = 2
SPECIAL_UNITS = ("<blank>", "<unk>", "<sos/eos>")
META_FILE = "tokenizer.json"
UNITS_FILE = "units.txt"


class TokenizerError(ValueError):
    """A tokenizer cannot be trained or loaded; the message names the file or option."""


class Tokenizer(ABC):
    type: str

    @property
    @abstractmethod
    def units(self) -> list[str]:
        """Every unit, indexed by id (the first three are SPECIAL_UNITS)."""

    @property
    def vocab_size(self) -> int:
        return len(self.units)

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no blank, no sos/eos)."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; special ids (blank, unk, sos/eos) are dropped."""

    @abstractmethod
    def _save_model(self, directory: Path) -> dict:
        """Write the type's model files; return extra metadata for tokenizer.json."""

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        extra = self._save_model(directory)
        with (directory / UNITS_FILE).open("w", encoding="utf-8") as f:
            f.writelines(f"{unit} {i}\n" for i, unit in enumerate(self.units))
        meta = {"type": self.type, "vocab_size": self.vocab_size, "blank_id": BLANK_ID,
                "unk_id": UNK_ID, "sos_eos_id": SOS_EOS_ID, **extra}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return directory


def train_tokenizer(texts: list[str], type: str, vocab_size: int | None) -> Tokenizer:
    """Train a tokenizer of `type` ("bpe", "unigram" or "char") on `texts`."""
    from asrkit.text.char_tokenizer import CharTokenizer
    from asrkit.text.sentencepiece_tokenizer import SentencePieceTokenizer

    if not texts:
        raise TokenizerError("no training text: the manifest(s) hold no utterances")
    if type == "char":
        return CharTokenizer.train(texts, vocab_size)
    if type in ("bpe", "unigram"):
        if vocab_size is None:
            raise TokenizerError(f"--vocab-size is required for type '{type}'")
        return SentencePieceTokenizer.train(texts, type, vocab_size)
    raise TokenizerError(f"unknown tokenizer type '{type}' (known: bpe, unigram, char)")


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer saved by `Tokenizer.save` (or `asrkit tokenizer`)."""
    from asrkit.text.char_tokenizer import CharTokenizer
    from asrkit.text.sentencepiece_tokenizer import SentencePieceTokenizer

    meta_path = Path(directory) / META_FILE
    if not meta_path.is_file():
        raise TokenizerError(f"{meta_path}: not found (train one with `asrkit tokenizer`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{meta_path}: not valid JSON ({e.msg})") from None
    kind = meta.get("type")
    if kind == "char":
        return CharTokenizer.load(Path(directory))
    if kind in ("bpe", "unigram"):
        return SentencePieceTokenizer.load(Path(directory))
    raise TokenizerError(f"{meta_path}: unknown tokenizer type {kind!r}")


def copy_tokenizer(src: str | Path, dst: str | Path) -> Path:
    """Copy a tokenizer directory (e.g. into an experiment directory)."""
    load_tokenizer(src)  # fail early on a broken source
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return Path(dst)
