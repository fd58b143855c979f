"""Tokenizer types by name, and training, loading and copying tokenizer directories.

    from asrkit.text.registry import load_tokenizer, train_tokenizer
    tokenizer = train_tokenizer(texts, "bpe", 300)
    tokenizer.save("data/synth/bpe300")
    tokenizer = load_tokenizer("data/synth/bpe300")

The implementations (asrkit.text.char_tokenizer, asrkit.text.sentencepiece_tokenizer)
depend only on the interface in asrkit.text.base; this module depends on them, so there is
no import cycle. A new type is one module with a ``Tokenizer`` subclass and one entry in
``TYPES``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from asrkit.config import ConfigError
from asrkit.text.base import META_FILE, Tokenizer, TokenizerError
from asrkit.text.char_tokenizer import CharTokenizer
from asrkit.text.sentencepiece_tokenizer import SentencePieceTokenizer

# type name -> (train(texts, vocab_size), load(directory)); bpe and unigram share a class
TYPES = {
    "char": (CharTokenizer.train, CharTokenizer.load),
    "bpe": (lambda texts, size: SentencePieceTokenizer.train(texts, "bpe", size),
            SentencePieceTokenizer.load),
    "unigram": (lambda texts, size: SentencePieceTokenizer.train(texts, "unigram", size),
                SentencePieceTokenizer.load),
}
NEEDS_VOCAB_SIZE = ("bpe", "unigram")


def train_tokenizer(texts: list[str], type: str, vocab_size: int | None) -> Tokenizer:
    """Train a tokenizer of `type` ("bpe", "unigram" or "char") on `texts`."""
    if not texts:
        raise TokenizerError("no training text: the manifest(s) hold no utterances")
    if not any(text.strip() for text in texts):
        raise TokenizerError(f"no training text: all {len(texts)} utterances have an empty "
                             "text")
    if type not in TYPES:
        raise TokenizerError(f"unknown tokenizer type '{type}' (known: {', '.join(TYPES)})")
    if type in NEEDS_VOCAB_SIZE and vocab_size is None:
        raise TokenizerError(f"--vocab-size is required for type '{type}'")
    return TYPES[type][0](texts, vocab_size)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer saved by `Tokenizer.save` (or `asrkit tokenizer`)."""
    meta_path = Path(directory) / META_FILE
    if not meta_path.is_file():
        raise TokenizerError(f"{meta_path}: not found (train one with `asrkit tokenizer`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{meta_path}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise TokenizerError(f"{meta_path}: not UTF-8 text") from None
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in TYPES:
        raise TokenizerError(f"{meta_path}: unknown tokenizer type {kind!r}")
    return TYPES[kind][1](Path(directory))


def fingerprint(tokenizer: Tokenizer) -> str:
    """A short hash of the tokenizer's units in id order: two tokenizers with the same
    fingerprint map ids to the same units (stored with a model, checked when decoding)."""
    return hashlib.sha256("\n".join(tokenizer.units).encode("utf-8")).hexdigest()[:16]


def copy_tokenizer(src: str | Path, dst: str | Path) -> Path:
    """Copy a tokenizer directory (e.g. into an experiment directory)."""
    load_tokenizer(src)  # fail early on a broken source
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return Path(dst)


def resolve_vocab_size(config: dict) -> int:
    """A training config's output size: ``vocab_size`` if set, else the vocabulary size of
    the tokenizer in ``tokenizer.dir``."""
    if config.get("vocab_size") is not None:
        return int(config["vocab_size"])
    tokenizer_dir = (config.get("tokenizer") or {}).get("dir")
    if tokenizer_dir is None:
        raise ConfigError("vocab_size: no output size: set vocab_size=N or "
                          "tokenizer.dir=<tokenizer directory>")
    return int(load_tokenizer(tokenizer_dir).vocab_size)
