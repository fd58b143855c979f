"""The tokenizer interface: what every tokenizer type (asrkit.text.registry) provides.

Ids are fixed for every tokenizer type so that models and decoders never ask:
  0 `<blank>` (CTC blank; never produced by `encode`), 1 `<unk>`, 2 `<sos/eos>`
  (the attention decoder's start and end symbol); real units start at 3.
A tokenizer directory holds `tokenizer.json` (type and sizes), `units.txt` (`<piece> <id>`
per line, as WeNet writes it) and the type's own model file; it is self-contained, so an
experiment directory can carry a copy.
"""

from __future__ import annotations

import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path

from asrkit.atomic_text import write_error

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
        """Write the tokenizer's files into ``directory``: all of them first into a hidden
        staging directory there, then renamed into place, so that a failed write (a full
        disk) leaves a tokenizer saved before whole (OSError naming the directory)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        staging = directory / f".saving{os.getpid()}"
        try:
            staging.mkdir(exist_ok=True)
            extra = self._save_model(staging)
            with (staging / UNITS_FILE).open("w", encoding="utf-8") as f:
                f.writelines(f"{unit} {i}\n" for i, unit in enumerate(self.units))
            meta = {"type": self.type, "vocab_size": self.vocab_size, "blank_id": BLANK_ID,
                    "unk_id": UNK_ID, "sos_eos_id": SOS_EOS_ID, **extra}
            (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n",
                                             encoding="utf-8")
            previous = _model_file(directory / META_FILE)  # a tokenizer saved here before
            for path in sorted(staging.iterdir()):
                os.replace(path, directory / path.name)
            if previous and previous != extra.get("model"):  # e.g. spm.model beside a char one
                (directory / previous).unlink(missing_ok=True)
        except OSError as e:
            raise write_error(directory, e) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        return directory


def _model_file(meta_path: Path) -> str | None:
    """The model file (beside units.txt) that the tokenizer.json at ``meta_path`` names."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or not a tokenizer's: nothing of it to remove
        return None
    model = meta.get("model") if isinstance(meta, dict) else None
    return model if isinstance(model, str) and Path(model).name == model else None
