"""``<id> <text>`` files: hyp.txt and ref.txt of a decode, Kaldi's ``text`` format.

    refs = read_text("ref.txt")            # {id: text}, in file order
    write_text("hyp.txt", {"utt1": "hello world", "utt2": ""})
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path


def read_text(path: str | Path) -> dict[str, str]:
    """``<id> <text>`` per line (text may be empty) -> {id: text}, in file order. Lines end at
    "\\n" only (a "\\r" before it is dropped), so that no other character can split an
    utterance in two; a UTF-8 byte-order mark is skipped; an error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    texts: dict[str, str] = {}
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[e.start]:02x} "
                             f"at byte {e.start + 1} of the line)") from None
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        uid = parts[0]
        if uid in texts:
            raise ValueError(f"{path}:{number}: duplicate id {uid!r}")
        texts[uid] = parts[1] if len(parts) > 1 else ""
    return texts


def write_text(path: str | Path, texts: Mapping[str, str]) -> None:
    """Write {id: text} as ``<id> <text>`` lines (``<id>`` alone for an empty text). A text
    holding a line break is an error naming its utterance (it would read back as two)."""
    for uid, text in texts.items():
        if "\n" in text or "\r" in text:
            raise ValueError(f"{path}: the text of {uid!r} holds a line break: {text!r}")
    lines = [f"{uid} {text}".rstrip() for uid, text in texts.items()]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
