import random

import numpy as np
import pytest
import torch

from asrkit.training.checkpoint import (
    CheckpointManager,
    atomic_save,
    best_metric_problem,
    list_checkpoints,
    newest_checkpoint,
)
from asrkit.training.rng import capture_rng_state, restore_rng_state


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    atomic_save({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    path = atomic_save({"x": torch.ones(2)}, tmp_path / "a" / "c.pt")
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.pt", "c.pt.sha256"]
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))


def state(epoch, step, **metrics):
    return {"model": {"w": torch.full((2,), float(epoch))}, "config": {}, "epoch": epoch,
            "step": step, "epoch_complete": True, "metrics": metrics}


def test_keeps_last_k_and_best_k(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2, keep_best=2, best_metric="dev_loss")
    losses = [5.0, 1.0, 4.0, 2.0, 3.0, 6.0]
    for epoch, loss in enumerate(losses, start=1):
        manager.save(state(epoch, 10 * epoch, dev_loss=loss), "epoch")
    kept = sorted(p.name for p in tmp_path.glob("epoch_*.pt"))
    # last two (5, 6) and best two (2: 1.0, 4: 2.0)
    assert kept == ["epoch_2.pt", "epoch_4.pt", "epoch_5.pt", "epoch_6.pt"]
    assert (tmp_path / "last.pt").resolve().name == "epoch_6.pt"


def test_ties_keep_the_newer_epochs_as_average_ranks_them(tmp_path):
    """Every epoch at 100 % WER: the best two are the newest two, which is what
    `asrkit average --best-by dev_wer` would then pick (asrkit.training.average)."""
    from asrkit.training.average import select_checkpoints

    manager = CheckpointManager(tmp_path / "checkpoints", keep_last=1, keep_best=2,
                                best_metric="dev_wer")
    for epoch in range(1, 5):
        manager.save(state(epoch, 10 * epoch, dev_wer=100.0), "epoch")
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*.pt"))
    assert kept == ["epoch_3.pt", "epoch_4.pt"]
    chosen = select_checkpoints(tmp_path, 2, "dev_wer", False, False)
    assert [i.path.name for i in chosen] == kept


def test_accuracy_metrics_keep_the_highest(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=1, keep_best=1, best_metric="dev_acc")
    for epoch, acc in enumerate([0.2, 0.9, 0.5], start=1):
        manager.save(state(epoch, epoch, dev_acc=acc), "epoch")
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_2.pt", "epoch_3.pt"]


def test_a_best_metric_the_validation_does_not_record_prunes_nothing(corpus, tmp_path,
                                                                    capsys):
    """trainer.best_metric=dev_loss_atn (for dev_loss_att): the run stops at its first
    epoch checkpoint with one line naming the key, the checkpoint written, nothing pruned."""
    from asrkit.bin.train import main

    metrics = {"dev_loss": 3.0, "dev_loss_att": 2.0, "dev_utterances": 2}
    assert best_metric_problem(metrics, "dev_loss_atn", 2) == (
        "trainer.best_metric: this run's validation records no dev_loss_atn (it records "
        "dev_loss, dev_loss_att); the checkpoint was written, nothing pruned")
    assert best_metric_problem(metrics, "dev_loss_att", 2) is None
    assert best_metric_problem({"train_loss": 1.0}, "dev_loss_atn", 2) is None  # not validated
    manager = CheckpointManager(tmp_path / "m", keep_last=1, keep_best=0, best_metric="dev_loss")
    for epoch in (1, 2):
        manager.save(state(epoch, epoch), "epoch", prune=False)
    assert len(list((tmp_path / "m").glob("epoch_*.pt"))) == 2
    exp = tmp_path / "exp"
    assert main(corpus.overrides(exp, "trainer.max_epochs=2", "trainer.keep_best=2",
                                 "trainer.best_metric=dev_loss_atn")) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert ("asrkit train: trainer.best_metric: this run's validation records no dev_loss_atn "
            "(it records dev_acc, ") in err
    assert [p.name for p in (exp / "checkpoints").glob("epoch_*.pt")] == ["epoch_1.pt"]


def test_newest_checkpoint_skips_a_truncated_file(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=5, keep_best=0, best_metric="dev_loss")
    manager.save(state(1, 10), "epoch")
    step = state(1, 15)
    step["epoch_complete"] = False
    manager.save(step, "step")
    assert newest_checkpoint(tmp_path).name == "step_15.pt"
    data = (tmp_path / "step_15.pt").read_bytes()
    (tmp_path / "step_15.pt").write_bytes(data[: len(data) // 2])  # a crash mid-copy
    assert newest_checkpoint(tmp_path).name == "epoch_1.pt"
    assert [i.step for i in list_checkpoints(tmp_path)] == [10]


def test_empty_directory_has_no_checkpoint(tmp_path):
    assert newest_checkpoint(tmp_path / "missing") is None


@pytest.mark.parametrize("keep_last", [1, 3])
def test_step_checkpoints_keep_the_newest(tmp_path, keep_last):
    manager = CheckpointManager(tmp_path, keep_last=keep_last, keep_best=0, best_metric="dev_loss")
    for step in range(1, 6):
        s = state(1, step)
        s["epoch_complete"] = False
        manager.save(s, "step")
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == \
        [f"step_{s}.pt" for s in range(6 - keep_last, 6)]


def test_a_stops_step_checkpoint_goes_once_its_epoch_is_done(tmp_path):
    """Ctrl-C mid-epoch 2 writes step_7.pt; the resumed run finishes epoch 2 (epoch_2.pt,
    step 10): step_7.pt is stale and removed. A periodic step checkpoint stays (keep_last)."""
    manager = CheckpointManager(tmp_path, keep_last=5, keep_best=0, best_metric="dev_loss")
    manager.save(state(1, 5), "epoch")
    manager.save({**state(2, 6), "epoch_complete": False}, "step")          # save_interval
    manager.save({**state(2, 7), "epoch_complete": False, "interrupted": True}, "step")
    assert {p.name for p in tmp_path.glob("*.pt")} >= {"step_6.pt", "step_7.pt"}
    manager.save(state(2, 10), "epoch")
    assert sorted(p.name for p in tmp_path.glob("*_*.pt")) == ["epoch_1.pt", "epoch_2.pt",
                                                                 "step_6.pt"]
