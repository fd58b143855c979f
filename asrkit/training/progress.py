"""What the user watches during an epoch.

On a terminal, one line redrawn in place:

    epoch 3/20  [#########...........]  120/300  loss 45.21  lr 1.20e-03  8,345 frames/s  ETA 1:23

Elsewhere (a log file, a batch job) there is no bar; the trainer's log lines every
``trainer.log_interval`` updates carry the same numbers. ``trainer.progress_bar`` is
``auto`` (a bar when stderr is a terminal), ``true`` or ``false``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

from asrkit.durations import format_duration


def use_progress_bar(setting: str | bool, stream: TextIO = sys.stderr) -> bool:
    if setting == "auto":
        return hasattr(stream, "isatty") and stream.isatty()
    return bool(setting)


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (not stdout's: the bar is on stderr),
    $COLUMNS when it is a positive number; 120 when ``stream`` is not a terminal or its
    size is unknown (0, as on a new pseudo-terminal)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:  # unset or not a number
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal
            columns = 0
    return columns if columns > 0 else 120


def eta_seconds(done: int, total: int, elapsed: float) -> float:
    """Remaining time at the average pace so far."""
    return elapsed / done * (total - done) if done > 0 else float("nan")


class EpochProgress:
    def __init__(self, epoch: int, max_epochs: int, total: int, enabled: bool,
                 start_at: int = 0, stream: TextIO = sys.stderr, min_interval: float = 0.2):
        self.epoch, self.max_epochs, self.total = epoch, max_epochs, total
        self.enabled, self.stream = enabled, stream
        self.start_at = start_at  # batches done before this process started (resume)
        self.start = time.monotonic()
        self.min_interval = min_interval
        self._last_draw = 0.0

    def line(self, done: int, loss: float, lr: float, frames_per_s: float) -> str:
        """``loss`` and ``frames_per_s``: the last log line's (the bar reads nothing from the
        device); NaN before the first, shown as "-"."""
        elapsed = time.monotonic() - self.start
        eta = eta_seconds(done - self.start_at, self.total - self.start_at, elapsed)
        eta_text = "?" if math.isnan(eta) else format_duration(eta)
        width = 20
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        loss_text = "-" if math.isnan(loss) else f"{loss:.2f}"
        rate = "-" if math.isnan(frames_per_s) else f"{frames_per_s:,.0f}"
        return (f"epoch {self.epoch}/{self.max_epochs}  [{bar}]  {done}/{self.total}  "
                f"loss {loss_text}  lr {lr:.2e}  {rate} frames/s  ETA {eta_text}")

    def update(self, done: int, loss: float, lr: float, frames_per_s: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and done < self.total:
            return
        self._last_draw = now
        columns = terminal_columns(self.stream)
        self.stream.write("\r\033[K" + self.line(done, loss, lr, frames_per_s)[: columns - 1])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
