"""Writing checkpoint files atomically with a content hash, and verifying them.

    atomic_save(state, "exp/a/checkpoints/epoch_3.pt")   # + epoch_3.pt.sha256 beside it
    verify(path)   # True: the hash matches; False: the file changed (corrupt); None: no hash

A checkpoint is written to a hidden temporary name in its directory, flushed and fsync'ed,
hashed (SHA-256 of its bytes), renamed into place, and then its hash file is written the
same way. A crash never leaves a truncated file under a real name, and a file corrupted
afterwards (same size, other bytes: a cheap header read does not notice) fails ``verify``.
A checkpoint without a hash file (written by an older asrkit, or a crash between the two
renames) is "unverified" (None), and its readers load it in full to find out.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from asrkit.atomic_text import write_error

HASH_SUFFIX = ".sha256"


class CorruptCheckpointError(ValueError):
    """A checkpoint file does not load or differs from its recorded hash."""
_CHUNK = 1 << 22
# what torch.load raises for a truncated file, another format, or a pickle it refuses
# (a text file unpickles into a KeyError)
UNREADABLE = (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError,
              pickle.UnpicklingError, zipfile.BadZipFile)


def load_file(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` of a checkpoint file (weights only, to the CPU; ``mmap``: the weights
    memory-mapped where the file's format allows, so that reading the metadata does not
    read them); one CorruptCheckpointError naming the file when it does not load. The
    content hash is the caller's to check (``verify``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # not the zip format: no memory map
                pass
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if isinstance(e, (KeyError, IndexError)) or not first:  # their text alone says little
            first = f"{type(e).__name__}{': ' + first if first else ''}"
        raise CorruptCheckpointError(f"{path}: corrupt or unreadable checkpoint ({first})") \
            from None


def load_verified(path: str | Path) -> Any:
    """``load_file`` of a checkpoint whose bytes match its recorded hash: one that differs is
    a CorruptCheckpointError naming it (one without a hash file loads unverified)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if verify(path) is False:
        raise CorruptCheckpointError(f"{path}: corrupt checkpoint (its content differs from "
                                     f"its recorded hash {hash_path(path).name})")
    return load_file(path)


def hash_path(path: str | Path) -> Path:
    """``<file>.sha256`` beside the file; for a symlink (``checkpoints/last.pt``) beside the
    file it points to, whose hash it is."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    return path.with_name(path.name + HASH_SUFFIX)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save(obj: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file, fsync, rename into place, then its hash file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # a full disk: torch.save's own error names no file
        raise write_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_atomic(hash_path(path), lambda f: f.write(f"{digest}  {path.name}\n".encode()))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def recorded_hash(path: str | Path) -> str | None:
    """The hash ``path``'s hash file records (what identifies the checkpoint written there,
    without reading it), or None without a readable one."""
    try:
        return hash_path(path).read_text(encoding="ascii").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None


def verify(path: str | Path) -> bool | None:
    """True when ``path`` has the bytes its hash file records, False when it does not (or
    the hash file is unreadable), None when there is no hash file."""
    if not hash_path(path).is_file():
        return None
    expected = recorded_hash(path)
    try:
        return expected is not None and file_sha256(path) == expected
    except OSError:
        return False
