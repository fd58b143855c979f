import fcntl
import io
import os
import pty
import struct
import termios

from asrkit.durations import format_duration
from asrkit.training.progress import (
    EpochProgress,
    eta_seconds,
    terminal_columns,
    use_progress_bar,
)


def test_durations_and_eta():
    assert format_duration(5) == "0:05" and format_duration(125) == "2:05"
    assert format_duration(3723) == "1:02:03"
    assert eta_seconds(done=25, total=100, elapsed=10.0) == 30.0


def test_bar_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # a stream that is no terminal: 120 columns
    assert not use_progress_bar("auto", io.StringIO())
    assert use_progress_bar(True, io.StringIO())
    stream = io.StringIO()
    bar = EpochProgress(3, 20, total=10, enabled=True, stream=stream, min_interval=0)
    bar.update(5, loss=45.213, lr=1.2e-3, frames_per_s=8345)
    text = stream.getvalue()
    assert "epoch 3/20" in text and "[##########..........]" in text and "5/10" in text
    assert "loss 45.21" in text and "lr 1.20e-03" in text and "8,345 frames/s" in text
    assert "ETA" in text
    # before the first log line there is no loss or rate yet: "-", not nan and 0
    early = io.StringIO()
    EpochProgress(1, 1, 10, enabled=True, stream=early, min_interval=0).update(
        1, loss=float("nan"), lr=1e-3, frames_per_s=float("nan"))
    assert "loss -  lr 1.00e-03  - frames/s" in early.getvalue()
    assert "nan" not in early.getvalue()
    silent = io.StringIO()
    EpochProgress(1, 1, 10, enabled=False, stream=silent).update(5, 1.0, 1.0, 1.0)
    assert silent.getvalue() == ""


def test_the_bar_fits_the_width_of_its_own_terminal(monkeypatch):
    """The width is that of the terminal the bar is drawn on (stderr), whatever stdout is;
    $COLUMNS overrides it, as for other terminal programs."""
    monkeypatch.delenv("COLUMNS", raising=False)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
    with os.fdopen(follower, "w") as terminal:
        assert terminal_columns(terminal) == 50
        EpochProgress(3, 20, total=10, enabled=True, stream=terminal, min_interval=0).update(
            5, loss=45.213, lr=1.2e-3, frames_per_s=8345)
        drawn = os.read(leader, 1000).decode()
        assert drawn == "\r\x1b[K" + "epoch 3/20  [##########..........]  5/10  loss 45.21  "[:49]
        monkeypatch.setenv("COLUMNS", "33")
        assert terminal_columns(terminal) == 33
    os.close(leader)
    assert terminal_columns(io.StringIO()) == 33
    for junk in ("0", "-5", "²", "wide"):  # not a positive number: as if unset
        monkeypatch.setenv("COLUMNS", junk)
        assert terminal_columns(io.StringIO()) == 120
    leader, follower = pty.openpty()  # a terminal whose size nobody has set: 0 x 0
    with os.fdopen(follower, "w") as unsized:
        assert terminal_columns(unsized) == 120
    os.close(leader)
