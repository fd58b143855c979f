import pytest
import torch

from asrkit.bin.average import main
from asrkit.training.average import average_state_dicts, select_checkpoints
from asrkit.training.checkpoint import CheckpointManager


@pytest.fixture
def exp_dir(tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", keep_last=10, keep_best=0,
                                best_metric="dev_loss")
    gen = torch.Generator().manual_seed(0)
    for epoch, (loss, wer) in enumerate([(9.0, 50.0), (3.0, 40.0), (5.0, 20.0), (4.0, 30.0)],
                                        start=1):
        manager.save({
            "model": {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen),
                      "bn.num_batches_tracked": torch.tensor(100 * epoch)},
            "config": {"vocab_size": 10}, "epoch": epoch, "step": 10 * epoch,
            "epoch_complete": True, "train_hours": 0.5 * epoch,
            "metrics": {"dev_loss": loss, "dev_wer": wer}}, "epoch")
    return tmp_path


def load(path):
    return torch.load(path, weights_only=True)


def test_average_is_the_mean_of_the_last_n(exp_dir, capsys):
    assert main([str(exp_dir), "--num", "3"]) == 0
    avg = load(exp_dir / "avg_3.pt")
    states = [load(exp_dir / "checkpoints" / f"epoch_{e}.pt")["model"] for e in (2, 3, 4)]
    for key in ("w", "b"):
        stacked = torch.stack([s[key] for s in states])
        assert torch.equal(avg["model"][key], stacked.double().mean(0).float())
        torch.testing.assert_close(avg["model"][key], stacked.mean(0), rtol=0, atol=1e-6)
    assert avg["model"]["bn.num_batches_tracked"] == 400  # integers: from the newest
    assert avg["averaged_from"] == ["epoch_2.pt", "epoch_3.pt", "epoch_4.pt"]
    assert avg["epoch"] == 4 and avg["train_hours"] == 2.0 and avg["config"]["vocab_size"] == 10
    assert "epoch_2.pt, epoch_3.pt, epoch_4.pt" in capsys.readouterr().out


@pytest.mark.parametrize("metric, chosen", [("dev_loss", [2, 4]), ("dev_wer", [3, 4])])
def test_best_by_a_dev_metric(exp_dir, metric, chosen):
    assert main([str(exp_dir), "--num", "2", "--best-by", metric]) == 0
    assert load(exp_dir / "avg_2.pt")["averaged_from"] == [f"epoch_{e}.pt" for e in chosen]
    assert [i.epoch for i in select_checkpoints(exp_dir, 2, metric)] == chosen


def test_unknown_metric_and_empty_experiment_are_errors(exp_dir, tmp_path, capsys):
    assert main([str(exp_dir), "--num", "2", "--best-by", "dev_bleu"]) == 2
    assert "dev_bleu" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--num", "2"]) == 2


def test_average_state_dicts_rejects_mismatched_parameters():
    with pytest.raises(ValueError, match="other parameters"):
        average_state_dicts([{"a": torch.ones(1)}, {"b": torch.ones(1)}])
