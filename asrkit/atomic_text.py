"""Writing a small text file atomically: to a hidden temporary name of this process in the
same directory, then renamed into place, so that a reader (or a crash) never sees half a
file and two processes writing the same file at once do not trample each other's
temporary (the later rename wins). Checkpoints, which are also fsync'ed and hashed, go
through asrkit.checkpoint_io instead; manifests through asrkit.data.manifest (checked
line by line as they are written)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:  # a full disk: the error names no file
        raise write_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_error(path: Path, error: BaseException) -> OSError:
    """One OSError naming the file that could not be written and the free space left."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    reason = getattr(error, "strerror", None) or \
        (str(error).strip().splitlines() or [type(error).__name__])[0]
    kind = type(error) if isinstance(error, OSError) else OSError  # FileNotFoundError stays one
    wrapped = kind(f"{path}: could not be written ({free}): {reason}")
    wrapped.errno = getattr(error, "errno", None)
    return wrapped
