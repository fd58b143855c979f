"""Hold Ctrl-C (SIGINT) and SIGTERM over a few renames that must happen together.

    with deferred_signals():
        swap_directories()
        rename_manifests()
    # a signal that came meanwhile is delivered here, to the handler that was in place

A signal that arrives inside the block is recorded, not acted on; when the block ends, the
previous handlers are put back and each recorded signal is raised again, once, so Ctrl-C
still raises KeyboardInterrupt and SIGTERM still ends the process, only after the block
(every signal received is delivered; the first exception a handler raises comes out).
Meant for blocks of milliseconds (renames), never for work a user may want to interrupt.
Signal handlers can only be set in the main thread: elsewhere the block runs unprotected;
a signal whose handler was installed from C (which Python cannot put back) is not held.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame) -> None:
        received.append(signum)

    previous = {}
    for signum in DEFERRED:
        if signal.getsignal(signum) is not None:  # None: installed from C, left alone
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        raised: BaseException | None = None
        for signum in dict.fromkeys(received):  # each delivered, even after one raised
            try:
                signal.raise_signal(signum)
            except BaseException as e:  # noqa: BLE001 - the first is raised below
                raised = raised or e
        if raised is not None:
            raise raised
