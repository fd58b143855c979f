"""One training run per exp_dir: a second ``asrkit train`` into a directory in use fails at
once, naming the holder, and touches nothing; the lock goes with the process that held it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from asrkit.training.run import run_training
from asrkit.training.train_lock import TrainLock
from tests.training.test_trainer import run

HOLD = ("import sys, time; from pathlib import Path; from asrkit.training.train_lock import "
        "TrainLock; lock = TrainLock.acquire(Path(sys.argv[1])); print('held', flush=True); "
        "time.sleep(600)")


def test_a_second_run_into_a_directory_in_use_fails_and_touches_nothing(corpus, tmp_path,
                                                                        capsys):
    exp = tmp_path / "exp"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(exp)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        status = run_training(corpus.config(exp, "trainer.max_epochs=1"))
        err = capsys.readouterr().err
        assert status == 2
        assert err.startswith(f"asrkit train: exp_dir: {exp.resolve()} is in use by another "
                              f"asrkit train (pid {holder.pid} on ")
        assert err.count("\n") == 1
        assert sorted(p.name for p in exp.iterdir()) == [".train.lock"]  # no log, no copies
    finally:
        holder.send_signal(signal.SIGKILL)  # dies without releasing anything itself
        holder.wait()
    status, _ = run(corpus.config(exp, "trainer.max_epochs=1"))
    assert status == 0 and (exp / "checkpoints" / "epoch_1.pt").is_file()
    TrainLock.acquire(exp).release()  # the finished run let go of it


def test_the_lock_is_per_directory(tmp_path):
    first = TrainLock.acquire(tmp_path / "a")
    try:
        with pytest.raises(ValueError, match=f"pid {os.getpid()} on "):
            TrainLock.acquire(tmp_path / "a")
        TrainLock.acquire(tmp_path / "b").release()
    finally:
        first.release()
    TrainLock.acquire(tmp_path / "a").release()


def test_a_refused_run_after_another_in_the_same_process_writes_to_neither_log(corpus,
                                                                               tmp_path,
                                                                               capsys):
    """A sweep's second job into a directory in use: its one line reaches stderr, not the
    previous job's train.log (that run's log handlers are gone once it is cleaned up)."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_training(corpus.config(first, "trainer.max_epochs=1")) == 0
    before = (first / "train.log").read_text()
    capsys.readouterr()
    held = TrainLock.acquire(second)
    try:
        assert run_training(corpus.config(second, "trainer.max_epochs=1")) == 2
    finally:
        held.release()
    assert "is in use by another asrkit train" in capsys.readouterr().err
    assert (first / "train.log").read_text() == before


def test_a_file_system_without_flock_trains_unlocked_with_a_warning(corpus, tmp_path,
                                                                   monkeypatch, caplog):
    import errno
    import fcntl

    def no_flock(file, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    exp = tmp_path / "exp"
    with caplog.at_level("WARNING"):
        status, _ = run(corpus.config(exp, "trainer.max_epochs=1"))
    assert status == 0
    assert (f"{exp.resolve() / '.train.lock'}: cannot be locked (Function not implemented); "
            "a second run into this exp_dir would not be noticed") in caplog.text
