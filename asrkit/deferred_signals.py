"""Hold Ctrl-C (SIGINT) and SIGTERM over a few renames that must happen together.

    with deferred_signals():
        swap_directories()
        rename_manifests()
    # a signal that came meanwhile is delivered here, to the handler that was in place

A signal that arrives inside the block is recorded, not acted on; when the block ends, the
previous handlers are put back and each recorded signal is raised again, once, so Ctrl-C
still raises KeyboardInterrupt and SIGTERM still ends the process, only after the block.
Meant for blocks of milliseconds (renames), never for work a user may want to interrupt.
Signal handlers can only be set in the main thread: elsewhere the block runs unprotected.
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

    previous = {signum: signal.signal(signum, hold) for signum in DEFERRED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed from C, which Python cannot put back
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)
