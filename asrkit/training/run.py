"""Running one training job as ``asrkit train`` does: set up, train, clean up, and turn
every failure into one line with the documented exit status.

    status = run_training(compose_train_config([...]))
"""

from __future__ import annotations

import logging
import shutil
import sys
from typing import Any

from asrkit.atomic_text import os_error_status
from asrkit.checkpoint_io import CorruptCheckpointError
from asrkit.config import one_line
from asrkit.training.distributed import DistributedContext, lost_a_rank
from asrkit.training.log_handlers import logging_ready
from asrkit.training.train_step import TrainingError
from asrkit.training.trainer import Trainer

log = logging.getLogger("asrkit.training.trainer")


def run_training(config: dict[str, Any]) -> int:
    """Set up, train and clean up; returns the exit status (0 done, 1 failed, 2 bad setup,
    130/143 stopped by SIGINT/SIGTERM with a checkpoint written). Every failure is one line,
    on stderr and, once the run has its log, in train.log too (any rank's). Under DDP a rank
    whose collective fails because another rank exited says so in one line (the other
    rank's line says why)."""
    trainer, synchronized, set_up = Trainer(config), False, False
    try:
        try:
            trainer.setup()
        except CorruptCheckpointError as e:  # the files, not the command: a runtime failure
            return _fail(e, 1, trainer.ctx)
        except (ValueError, OSError) as e:  # a bad config value, exp_dir not writable, ...
            return _fail(e, os_error_status(e) if isinstance(e, OSError) else 2, trainer.ctx)
        set_up = True
        status = trainer.train()
        synchronized = True  # every rank returns from train() at the same point
        return status
    except TrainingError as e:
        return _fail(e, 1)
    except OSError as e:  # e.g. the disk filled up while writing a checkpoint
        return _fail(e, 1)
    except RuntimeError as e:  # a collective whose other end has gone: one line, not gloo's
        if trainer.ctx is None or not trainer.ctx.is_distributed or not lost_a_rank(e):
            raise
        return _fail(TrainingError(f"rank {trainer.ctx.rank}: another rank has exited (its "
                                   "own error says why); stopping"), 1)
    finally:
        if not set_up:
            _remove_what_setup_made(trainer)
        trainer.cleanup(synchronize=synchronized)


def _remove_what_setup_made(trainer: Trainer) -> None:
    """After a failed setup, exp_dir if this run made it (nothing in it is a result), while
    it holds exp_dir's lock, then the parents it made for it while they are empty: another
    run may have put its own experiment beside exp_dir in the meantime."""
    created = getattr(trainer, "created", None)
    lock = trainer.lock
    if created is None or lock is None or lock.file is None or not trainer.exp_dir.is_dir():
        return  # not made here, or not ours: unlocked (no flock), or locked by another run
    try:
        shutil.rmtree(trainer.exp_dir)
        for parent in trainer.exp_dir.parents:
            if parent == created.parent or any(parent.iterdir()):
                break
            parent.rmdir()
    except OSError as e:  # a rank's error log still open on a network file system
        print(f"asrkit train: {trainer.exp_dir} (made by this run) could not be removed: "
              f"{one_line(e)}", file=sys.stderr)


def _fail(error: BaseException, status: int, ctx: DistributedContext | None = None) -> int:
    """One line naming what failed: through the log (stderr and train.log) once it is set
    up, else on stderr (under DDP prefixed with the rank, as the log's lines are)."""
    message = one_line(error)
    if isinstance(error, OSError) and error.filename is not None and \
            str(error.filename) not in message:
        message = f"{error.filename}: {message}"
    if logging_ready():
        log.error("asrkit train: %s", message)
    else:
        rank = f"[rank {ctx.rank}] " if ctx is not None and ctx.is_distributed else ""
        print(f"{rank}asrkit train: {message}", file=sys.stderr, flush=True)
    return status
