"""Where a training run's log lines go: rank 0 logs INFO to stderr and ``<exp_dir>/train.log``;
another rank prints its own warnings and errors and appends its errors to rank 0's
train.log. The per-update lines (``STEP_LOGGER``) stay out of the console while a progress
bar draws there.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from asrkit.experiment_dir import ExperimentDir
from asrkit.training.distributed import DistributedContext

STEP_LOGGER = "asrkit.training.steps"  # per-update lines: train.log always, console w/o a bar
_handlers: list[logging.Handler] = []


class _SkipSteps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(STEP_LOGGER)


class _OwnEventsOnly(logging.Filter):
    """A rank other than 0 prints errors and the warnings logged with
    ``extra={"every_rank": True}`` (a skipped utterance of its share, an out-of-memory batch
    of its own); its other warnings (about the config, the data, a checkpoint) are rank 0's
    too, which prints them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or getattr(record, "every_rank", False)


class _ErrorsToSharedLog(logging.FileHandler):
    """A rank other than 0 appends its errors to rank 0's ``train.log`` (opened at the
    first error, once rank 0 has made the directory; before that stderr alone has it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.setLevel(logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        if Path(self.baseFilename).parent.is_dir():
            super().emit(record)


def setup_logging(exp_dir: Path, ctx: DistributedContext, progress_bar: bool) -> None:
    """Rank 0: INFO to stderr and ``exp_dir/train.log``; other ranks: warnings to stderr,
    errors to train.log too."""
    teardown_logging()
    root = logging.getLogger("asrkit")
    root.setLevel(logging.INFO if ctx.is_main else logging.WARNING)
    prefix = f"[rank {ctx.rank}] " if ctx.is_distributed else ""
    fmt = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = []
    if ctx.is_main:  # first, so that an exp_dir that cannot be written fails before anything
        exp_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(ExperimentDir(exp_dir).train_log, encoding="utf-8")
        file_handler.setFormatter(fmt)
        handlers.append(file_handler)
    else:
        errors = _ErrorsToSharedLog(ExperimentDir(exp_dir).train_log)
        errors.setFormatter(fmt)
        handlers.append(errors)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(
        ("\r\033[K" if progress_bar else "") + f"{prefix}%(levelname)s %(message)s"))
    if progress_bar:
        console.addFilter(_SkipSteps())
    if not ctx.is_main:
        console.addFilter(_OwnEventsOnly())
    _handlers.extend([console, *handlers])
    for handler in _handlers:
        root.addHandler(handler)
    root.propagate = False


def logging_ready() -> bool:
    """Whether setup_logging has run (messages reach stderr and train.log)."""
    return bool(_handlers)


def teardown_logging() -> None:
    root = logging.getLogger("asrkit")
    for handler in _handlers:
        root.removeHandler(handler)
        handler.close()
    _handlers.clear()
