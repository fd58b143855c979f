"""One ``asrkit train`` per experiment directory at a time.

Two runs in one exp_dir (run.sh started again in a second terminal, a sweep job pointed at a
directory in use) would write the same checkpoints, interleave train.log and prune each
other's checkpoints. Rank 0 therefore holds an exclusive ``flock`` on ``exp_dir/.train.lock``
for the whole run; a second run fails at once naming the process that holds it. The kernel
drops the lock when that process ends, however it ends (SIGKILL included), so a stale file
never blocks a later run. On a file system without flock (Lustre mounted ``noflock``, some
FUSE mounts) the run goes on unlocked, with a warning.

    lock = TrainLock.acquire(exp_dir)   # ValueError naming the holder if in use
    ...
    lock.release()
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from asrkit.experiment_dir import ExperimentDir


class TrainLock:
    def __init__(self, file, note: str = "") -> None:
        self._file = file
        self.note = note  # why there is no lock (a file system without flock), for the log

    @classmethod
    def acquire(cls, exp_dir: Path) -> TrainLock:
        """Create exp_dir if needed and take its lock; ValueError (naming the directory and
        the holder's pid, host and start time) when another run holds it."""
        path = ExperimentDir(exp_dir).train_lock
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "a process that has not yet written its pid"
            file.close()
            raise ValueError(f"exp_dir: {exp_dir} is in use by another asrkit train ({holder}); "
                             "wait for it to finish or stop it, or train into another "
                             "exp_dir") from None
        except OSError as e:  # no flock here (Lustre mounted noflock, some FUSE): train on
            file.close()
            return cls(None, f"{path}: cannot be locked ({e.strerror or e}); a second run "
                             "into this exp_dir would not be noticed")
        except BaseException:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        file.flush()
        return cls(file)

    @property
    def file(self):
        """The locked file, or None where the file system has no flock (unlocked)."""
        return self._file

    def release(self) -> None:
        """Drop the lock (the file stays: removing it could race a run that opened it).
        Unlocked explicitly: DataLoader workers forked during the run share the open file,
        and closing it here alone would leave the lock held until they exit."""
        if self._file is not None and not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
