"""What ``asrkit transcribe`` shows while it works and when it is done.

On a terminal, with more than one recording, one line redrawn in place:

    transcribe  [########............]  41/100 files  12:03 of audio  ETA 0:37

and at the end, always, one summary line (on stderr):

    transcribed 100 files (2 failed): 31:40 of audio in 0:52, RTF 0.027

RTF (real-time factor) = wall time / audio duration, reading and writing included.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from asrkit.durations import format_duration


class FileProgress:
    def __init__(self, total: int, enabled: bool, stream: TextIO = sys.stderr,
                 min_interval: float = 0.2) -> None:
        self.total, self.enabled, self.stream = total, enabled, stream
        self.start = time.monotonic()
        self.min_interval, self._last = min_interval, 0.0

    def update(self, done: int, audio_seconds: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.min_interval and done < self.total:
            return
        self._last = now
        filled = 20 * done // max(self.total, 1)
        elapsed = now - self.start
        eta = format_duration(elapsed / done * (self.total - done)) if done else "?"
        line = (f"transcribe  [{'#' * filled}{'.' * (20 - filled)}]  {done}/{self.total} files"
                f"  {format_duration(audio_seconds)} of audio  ETA {eta}")
        columns = shutil.get_terminal_size((120, 20)).columns
        self.stream.write("\r\033[K" + line[: columns - 1])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def summary_line(files: int, failed: int, audio_seconds: float, wall_seconds: float) -> str:
    rtf = f"{wall_seconds / audio_seconds:.3f}" if audio_seconds > 0 else "n/a (no audio)"
    failures = f" ({failed} failed)" if failed else ""
    return (f"transcribed {files} file{'s' if files != 1 else ''}{failures}: "
            f"{format_duration(audio_seconds)} of audio in {format_duration(wall_seconds)}, RTF {rtf}")
