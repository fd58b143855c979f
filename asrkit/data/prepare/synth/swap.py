"""Putting a synth run's new audio in place of the old, together with its manifests.

    <out>/wav/.prepare.lock      flock'ed by the run from its start to its end: one run at a time
    <out>/wav/.partial/<split>/  the new audio, made by the run
    <out>/wav/.replaced/<split>/ the audio a split had, swapped out by ``install``
    <out>/wav/.replaced/.committed  made once every manifest is renamed (the commit point)

asrkit.data.prepare.run_preparer calls ``install`` (once the manifests are written to temp
files), renames the manifests, calls ``committed``, then ``clean`` (``committed=True``); on a
failure it calls the undo ``install`` returned (with the manifests put back by
asrkit.data.manifest.write_manifests) and ``clean`` with ``committed=False``. A run killed
outright (SIGKILL) somewhere in between is mended by the next run's ``start``
(``recover``): without the commit mark the old manifests (their hard-linked copies, if a
rename had begun; a manifest that had none is removed) and the old audio go back; with it
the new ones stay. Nothing is fsync'ed: after a power cut the file system may have kept the
renames in another order. Files of the user's
own in ``wav/<split>`` (anything but synth's ``<split>-NNNNNN.wav``) move with each swap.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from asrkit.atomic_text import write_error

log = logging.getLogger(__name__)

STAGING = "wav/.partial"
REPLACED = "wav/.replaced"
COMMITTED = ".committed"     # in REPLACED
TRASH = ".removing-"         # in wav/: a directory being deleted
LOCK = "wav/.prepare.lock"
_locks: dict[Path, object] = {}  # out -> the open lock file


def start(out: Path, splits: tuple[str, ...]) -> Path:
    """Take the run's lock (ValueError when another run holds it), refuse a symlinked split
    directory, mend what a killed run left, and make the staging directories; returns
    the staging directory."""
    for split in splits:
        if (out / "wav" / split).is_symlink():
            raise ValueError(f"--out: {out / 'wav' / split} is a symbolic link; a run replaces "
                             f"wav/<split> as a whole: point --out at the other disk instead")
        for entry in (out / "wav" / split).iterdir() if (out / "wav" / split).is_dir() else ():
            if _synth_name(entry.name, split) and not _made_by_synth(entry, split):
                raise ValueError(f"--out: {entry} is named as synth's audio but is not a file "
                                 f"it could have written; rename it or move it out")
    _lock(out)
    try:
        recover(out, splits)
        for split in splits:
            (out / STAGING / split).mkdir(parents=True, exist_ok=True)
    except BaseException:
        _unlock(out)
        raise
    return out / STAGING


def install(out: Path, splits: list[str]) -> Callable[[], None]:
    """Swap each split's new audio directory in as ``wav/<split>``, the old one going to
    ``wav/.replaced/<split>`` and the user's files from it into the new one; returns what
    swaps them back. A failure is a one-line OSError naming the directory."""
    staging, aside, final = out / STAGING, out / REPLACED, out / "wav"
    aside.mkdir(parents=True, exist_ok=True)
    swapped: list[tuple[str, list[str]]] = []  # (split, the user's entries moved)

    def undo() -> None:
        for split, kept in reversed(swapped):
            for name in kept:
                os.replace(final / split / name, aside / split / name)
            os.replace(final / split, staging / split)
            if (aside / split).exists():
                os.replace(aside / split, final / split)
        swapped.clear()

    try:
        for split in splits:
            try:
                swapped.append((split, _swap_in(out, split)))
            except OSError as e:
                raise write_error(final / split, e) from None
    except BaseException:
        undo()
        raise
    return undo


def committed(out: Path) -> None:
    """Mark the commit point: every manifest is renamed."""
    (out / REPLACED / COMMITTED).touch()


def clean(out: Path, committed: bool) -> None:
    """The run's end: remove the new audio not swapped in and, after a commit, the old
    audio swapped out (without one, what a failed undo left aside stays for the next run);
    release the lock. Removing after a commit only warns when it fails: the corpus is in
    place, and the next run removes what is left."""
    try:
        if (out / STAGING).exists():
            shutil.rmtree(out / STAGING)
        if committed and (out / REPLACED).exists():
            _remove(out / REPLACED)
        elif (out / REPLACED).is_dir() and not any((out / REPLACED).iterdir()):
            (out / REPLACED).rmdir()
    except OSError as e:
        if not committed:
            raise
        log.warning("synth: the new corpus is in place, but %s could not be removed (%s); "
                    "the next run removes it", e.filename or out / REPLACED, e.strerror or e)
    finally:
        _unlock(out)


def recover(out: Path, splits: tuple[str, ...]) -> None:
    """What a killed run left: before its commit point, its manifests and audio go back;
    after it, only the leftovers go."""
    aside = out / REPLACED
    if aside.is_dir() and not (aside / COMMITTED).exists():
        for split in splits:
            for kept in out.glob(f".{split}.jsonl.old*"):  # a rename had begun
                os.replace(kept, out / f"{split}.jsonl")
            for mark in out.glob(f".{split}.jsonl.new*"):  # a manifest with no old one
                (out / f"{split}.jsonl").unlink(missing_ok=True)
                mark.unlink()
            if (aside / split).is_dir():
                if (out / "wav" / split).is_dir():
                    for entry in (out / "wav" / split).iterdir():
                        if not _made_by_synth(entry, split) and not (aside / split / entry.name).exists():
                            os.replace(entry, aside / split / entry.name)
                    shutil.rmtree(out / "wav" / split)  # the new audio, dropped
                os.replace(aside / split, out / "wav" / split)
    elif aside.is_dir():  # committed: the user's entries of the old directories move over
        for old in (entry for entry in aside.iterdir() if entry.is_dir()):
            for entry in old.iterdir():
                new = out / "wav" / old.name / entry.name
                if not _made_by_synth(entry, old.name) and not new.exists():
                    os.replace(entry, new)
    for split in splits:
        for stale in [*out.glob(f".{split}.jsonl.old*"), *out.glob(f".{split}.jsonl.new*"),
                      *out.glob(f".{split}.jsonl.tmp*")]:
            stale.unlink()
    for leftover in (out / STAGING, aside):
        if leftover.exists():
            _remove(leftover)
    for trash in (out / "wav").glob(f"{TRASH}*"):
        shutil.rmtree(trash)


def _remove(directory: Path) -> None:
    """Renamed out of the way first (one step), then deleted: a deletion cut short leaves
    no part of it (a commit mark gone before the audio it guards) where recover reads."""
    trash = directory.parent / f"{TRASH}{os.getpid()}"
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(directory, trash)
    shutil.rmtree(trash)


def _swap_in(out: Path, split: str) -> list[str]:
    staging, aside, final = out / STAGING / split, out / REPLACED / split, out / "wav" / split
    kept = [entry.name for entry in final.iterdir() if not _made_by_synth(entry, split)] \
        if final.exists() else []
    if final.exists():
        os.replace(final, aside)
    try:
        os.replace(staging, final)
    except BaseException:
        if aside.exists():
            os.replace(aside, final)
        raise
    moved: list[str] = []
    try:
        for name in kept:
            os.replace(aside / name, final / name)
            moved.append(name)
    except BaseException:
        for name in moved:
            os.replace(final / name, aside / name)
        os.replace(final, staging)
        os.replace(aside, final)
        raise
    return moved


def _made_by_synth(entry: Path, split: str) -> bool:
    """``<split>-NNNNNN.wav``, a regular file: the only files synth writes in wav/<split>
    (plan.py's ids)."""
    return _synth_name(entry.name, split) and entry.is_file() and not entry.is_symlink()


def _synth_name(name: str, split: str) -> bool:
    return re.fullmatch(rf"{re.escape(split)}-\d{{6}}\.wav", name) is not None


def _lock(out: Path) -> None:
    path = out / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    file = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise ValueError(f"--out: {out} is in use by another asrkit prepare synth; wait for it "
                         f"to finish or prepare into another directory") from None
    except OSError:  # a file system without flock: the run goes on unlocked
        file.close()
        log.warning("synth: %s cannot be locked (a file system without flock); a second run "
                    "into %s while this one runs would break this one", path, out)
        return
    _locks[out] = file


def _unlock(out: Path) -> None:
    file = _locks.pop(out, None)
    if file is not None:
        fcntl.flock(file, fcntl.LOCK_UN)
        file.close()
