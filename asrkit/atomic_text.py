"""Writing a small text file atomically: to a hidden temporary name of this process in the
same directory, then renamed into place, so that a reader (or a crash) never sees half a
file and two processes writing the same file at once do not trample each other's
temporary (the later rename wins). Checkpoints, which are also fsync'ed and hashed, go
through asrkit.checkpoint_io instead; manifests through asrkit.data.manifest (checked
line by line as they are written)."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
