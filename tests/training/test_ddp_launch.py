"""`asrkit train ... trainer.devices=2` as a user runs it (asrkit.training.distributed's
launcher, 2 gloo processes on the CPU): one epoch trains with rank 0 alone logging and
writing each checkpoint once; Ctrl-C writes a step checkpoint and exits 130 without a
traceback, and the same command then finishes the run. Every command has a time limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

LIMIT_S = 120  # a hang at a collective or at exit fails the test instead of the suite


def start(args: list[str]) -> subprocess.Popen:
    """`python -m asrkit train args` in its own session (a terminal's foreground job)."""
    return subprocess.Popen([sys.executable, "-m", "asrkit", "train", *args],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    """Its stderr once it exits; killed (its process group) after LIMIT_S."""
    try:
        return process.communicate(timeout=LIMIT_S)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"still running after {LIMIT_S} s: "
                             f"{process.communicate()[1][-3000:]}") from None


def wait_for_update(process: subprocess.Popen, log: Path, update: int) -> None:
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and f"update {update} " in log.read_text():
            return
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError(f"no update {update} logged: {process.communicate()[1][-3000:]}")


@pytest.mark.long(20)
def test_two_devices_train_an_epoch_with_rank_0_alone_writing(corpus, tmp_path):
    exp = tmp_path / "exp"
    process = start(corpus.overrides(exp, "trainer.devices=2", "trainer.max_epochs=1"))
    err = finish(process)
    assert process.returncode == 0, err[-3000:]
    assert sorted(os.listdir(exp / "checkpoints")) == ["epoch_1.pt", "epoch_1.pt.sha256", "last.pt"]
    ckpt = torch.load(exp / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and ckpt["epoch_complete"]
    text = (exp / "train.log").read_text()
    assert text.count("epoch 1 done") == text.count("training finished") == 1
    assert "[rank 0] " in text and "[rank 1]" not in text
    assert err.count("[rank 0] INFO training finished") == 1
    assert "[rank 1] INFO" not in err and "Traceback" not in err


@pytest.mark.long(40)
def test_ctrl_c_with_two_devices_writes_a_checkpoint_and_exits_130(corpus, tmp_path):
    exp = tmp_path / "exp"
    # 12 one-utterance updates per rank, each long enough (a wider encoder) that the
    # signal lands mid-epoch even on a fast machine
    args = corpus.overrides(exp, "trainer.devices=2", "trainer.max_epochs=1",
                            "data.num_workers=1", "trainer.tensorboard=false",
                            "data.sampler.max_frames=500", "encoder.d_model=256",
                            "encoder.ffn_dim=1024", "encoder.num_heads=4", "encoder.num_layers=2")
    process = start(args)
    wait_for_update(process, exp / "train.log", 2)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole job
    err = finish(process)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    stopped = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert stopped["step"] >= 2 and not stopped["epoch_complete"]
    step_file = exp / "checkpoints" / f"step_{stopped['step']}.pt"
    assert step_file.is_file()
    process = start(args)  # the same command resumes and finishes the epoch
    err = finish(process)
    assert process.returncode == 0, err[-3000:]
    assert "restarts from its first batch" not in err  # every rank continues mid-epoch
    text = (exp / "train.log").read_text()
    assert f"resumed from {step_file}" in text
    assert text.count("stopped by signal") == 1 and text.count("training finished") == 1
    assert torch.load(exp / "checkpoints" / "epoch_1.pt", weights_only=True)["epoch_complete"]


def test_the_launcher_reports_the_first_failure_and_kills_ranks_left_blocked():
    from asrkit.training.distributed import _wait_for_ranks

    def ranks(*scripts: str) -> list[subprocess.Popen]:
        return [subprocess.Popen(["sh", "-c", s]) for s in scripts]

    start = time.monotonic()  # rank 1 failed alone; rank 0 is blocked at a collective
    blocked = ranks("exec sleep 60", "exit 3")
    assert _wait_for_ranks(blocked, grace_s=0.5) == 3
    assert blocked[0].returncode == -signal.SIGKILL and time.monotonic() - start < 10
    assert _wait_for_ranks(ranks("exit 130", "exit 130"), grace_s=5) == 130
    assert _wait_for_ranks(ranks("exit 0", "kill -TERM $$"), grace_s=5) == 143  # a death by signal
    assert _wait_for_ranks(ranks("exit 0", "sleep 0.3"), grace_s=5) == 0


# ---- the launcher's signals, with stand-in ranks ------------------------------------------
RANK = """
import os, signal, sys, time
from asrkit.training.distributed import follow_launcher

out = sys.argv[1]

def stop(signum, frame):  # written, then renamed: the test never reads it half-written
    name = f"{out}/stopped{os.environ['RANK']}"
    with open(name + ".part", "w") as f:
        f.write(signal.Signals(signum).name)
    os.replace(name + ".part", name)
    sys.exit(143)

signal.signal(signal.SIGTERM, stop)
follow_launcher()
open(f"{out}/ready{os.environ['RANK']}", "w").close()
time.sleep(60)
"""
LAUNCHER = """
import signal, sys
from asrkit.training.distributed import launch_local

if sys.argv[3] == "nohup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
sys.exit(launch_local(2, [sys.argv[1]], command=[sys.executable, "-c", sys.argv[2]]))
"""


def start_launcher(out: Path, nohup: bool = False) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(out), RANK,
                                "nohup" if nohup else "-"])
    deadline = time.monotonic() + LIMIT_S
    while not all((out / f"ready{r}").exists() for r in range(2)):
        assert time.monotonic() < deadline and process.poll() is None, "ranks did not start"
        time.sleep(0.05)
    return process


def stopped_ranks(out: Path) -> list[str]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if all((out / f"stopped{r}").exists() for r in range(2)):
            break
        time.sleep(0.05)
    return [(out / f"stopped{r}").read_text() if (out / f"stopped{r}").exists() else "running"
            for r in range(2)]


def test_a_hangup_stops_the_ranks_as_sigterm_does(tmp_path):
    """The terminal closed: the ranks (each in a session of its own) must not go on alone."""
    process = start_launcher(tmp_path)
    process.send_signal(signal.SIGHUP)
    assert process.wait(timeout=LIMIT_S) == 143
    assert stopped_ranks(tmp_path) == ["SIGTERM", "SIGTERM"]


def test_under_nohup_a_hangup_stays_ignored(tmp_path):
    process = start_launcher(tmp_path, nohup=True)
    process.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert process.poll() is None and not any(tmp_path.glob("stopped*"))
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=LIMIT_S) == 143
    assert stopped_ranks(tmp_path) == ["SIGTERM", "SIGTERM"]


def test_ranks_whose_launcher_is_killed_get_sigterm(tmp_path):
    process = start_launcher(tmp_path)
    process.kill()  # it cannot pass anything on
    process.wait()
    assert stopped_ranks(tmp_path) == ["SIGTERM", "SIGTERM"]


def test_a_rank_killed_by_a_signal_gives_the_status_and_is_named(capfd):
    from asrkit.training.distributed import _wait_for_ranks

    # rank 1 is killed (the OOM killer, say); rank 0 then fails at its next collective
    ranks = [subprocess.Popen(["sh", "-c", s]) for s in ("sleep 0.3; exit 1", "kill -KILL $$")]
    assert _wait_for_ranks(ranks, grace_s=5) == 137
    assert capfd.readouterr().err == "asrkit train: rank 1 was killed by SIGKILL\n"
