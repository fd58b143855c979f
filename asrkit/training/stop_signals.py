"""SIGINT (Ctrl-C) and SIGTERM (a cluster's pre-emption notice) as a request to stop cleanly.

The handler only records the signal; the training loop finishes the current update, writes
a checkpoint, and exits with 128 + the signal number (130, 143), so scripts see that the
run did not finish and ``trainer.resume=auto`` continues it. A second Ctrl-C raises
KeyboardInterrupt at once; Python drops one raised while an object is being finalised (a
DataLoader iterator's ``__del__`` shutting its workers down), so the loop also asks
``abort_if_requested`` before it writes the checkpoint. DataLoader workers forked after ``install`` inherit the handler
and ignore the signal (it is not theirs to act on), so they keep feeding the last update.
Under ``trainer.devices=K`` the ranks run in sessions of their own and the launcher passes
the signal on to each once (asrkit.training.distributed.launch_local); the ranks agree to
stop at the same update.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.aborted = False  # a second Ctrl-C came
        self._pid = os.getpid()
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker
            return
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            self.aborted = True
            raise KeyboardInterrupt
        self.signum = signum

    def abort_if_requested(self) -> None:
        """Raise the KeyboardInterrupt of a second Ctrl-C that a finaliser swallowed."""
        if self.aborted:
            raise KeyboardInterrupt

    def install(self) -> StopRequest:
        """Take over SIGINT/SIGTERM (main thread only; elsewhere this does nothing)."""
        if threading.current_thread() is threading.main_thread():
            self._pid = os.getpid()
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
