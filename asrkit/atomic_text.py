"""Writing a small text file atomically: to a hidden temporary name of this process in the
same directory, then renamed into place, so that a reader (or a crash) never sees half a
file and two processes writing the same file at once do not trample each other's
temporary (the later rename wins). Checkpoints, which are also fsync'ed and hashed, go
through asrkit.checkpoint_io instead; manifests through asrkit.data.manifest (checked
line by line as they are written)."""

from __future__ import annotations

import errno
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


class WriteFailed(OSError):
    """A file could not be written for want of space or a failing device: a failure while
    running (exit status 1), unlike a path that cannot be used (a usage error, 2)."""


# a full disk or quota, a file too large, an I/O error: the machine's state, not the command
RUNTIME_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def os_error_status(error: OSError) -> int:
    """The exit status of an OSError that ends a command: 1 when a file could not be
    written for want of space (WriteFailed: the machine's state), 2 for a path that cannot
    be used (a missing directory, no permission: the command's)."""
    return 1 if isinstance(error, WriteFailed) else 2


def write_error(path: Path, error: BaseException) -> OSError:
    """One OSError naming the file that could not be written and the free space left: a
    WriteFailed for a full disk and the like (or an error with no errno, such as
    libsndfile's), else of the original kind (a missing directory stays FileNotFoundError)."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    reason = getattr(error, "strerror", None) or \
        (str(error).strip().splitlines() or [type(error).__name__])[0]
    code = getattr(error, "errno", None)
    kind = WriteFailed if code in RUNTIME_WRITE_ERRNOS or not isinstance(error, OSError) \
        else type(error)
    wrapped = kind(f"{path}: could not be written ({free}): {reason}")
    wrapped.errno = code
    return wrapped
