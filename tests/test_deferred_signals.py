"""asrkit.deferred_signals: Ctrl-C and SIGTERM held over a block, then delivered once."""

from __future__ import annotations

import signal
import threading

import pytest

from asrkit.deferred_signals import deferred_signals


def test_ctrl_c_inside_the_block_is_raised_after_it_once():
    steps = []
    with pytest.raises(KeyboardInterrupt), deferred_signals():
        signal.raise_signal(signal.SIGINT)
        steps.append("after the first")
        signal.raise_signal(signal.SIGINT)
        steps.append("after the second")
    assert steps == ["after the first", "after the second"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_goes_to_the_handler_that_was_in_place_after_the_block():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with deferred_signals():
            signal.raise_signal(signal.SIGTERM)
            assert calls == []
        assert calls == [signal.SIGTERM]
        with deferred_signals():  # nothing received: nothing delivered
            pass
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_error_in_the_block_propagates_and_the_handlers_come_back():
    with pytest.raises(OSError, match="disk"), deferred_signals():
        raise OSError("disk")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_the_block_runs_unprotected():
    ran, errors = [], []

    def body():
        try:
            with deferred_signals():  # signal.signal would raise ValueError here
                ran.append(True)
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            errors.append(e)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert ran == [True] and errors == []


def test_sigint_and_sigterm_in_one_block_are_both_delivered():
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt), deferred_signals():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        assert calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_handler_installed_from_c_is_left_alone(monkeypatch):
    """signal.getsignal gives None for it: setting another handler would lose it for good."""
    set_for = []
    real_signal, real_getsignal = signal.signal, signal.getsignal
    monkeypatch.setattr(signal, "getsignal", lambda signum: None if signum == signal.SIGTERM
                        else real_getsignal(signum))
    monkeypatch.setattr(signal, "signal", lambda signum, handler: set_for.append(signum)
                        or real_signal(signum, handler))
    with deferred_signals():
        pass
    assert set_for == [signal.SIGINT, signal.SIGINT]  # held, then put back; SIGTERM untouched
