import json

import pytest
import torch

from asrkit.bin.average import main
from asrkit.checkpoint_io import atomic_save
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


def test_last_is_the_default_and_names_the_file_avg_n(exp_dir, capsys):
    assert main([str(exp_dir), "--num", "2", "--last"]) == 0
    avg = load(exp_dir / "avg_2.pt")  # the name the recipes decode
    assert avg["averaged_from"] == ["epoch_3.pt", "epoch_4.pt"]
    assert avg["averaged_by"] == "last"
    assert "(last): epoch_3.pt, epoch_4.pt" in capsys.readouterr().out


@pytest.mark.parametrize("metric, chosen", [("dev_loss", [2, 4]), ("dev_wer", [3, 4])])
def test_best_by_a_dev_metric(exp_dir, metric, chosen):
    assert main([str(exp_dir), "--num", "2", "--best-by", metric]) == 0
    avg = load(exp_dir / f"avg_best_{metric}_2.pt")
    assert avg["averaged_from"] == [f"epoch_{e}.pt" for e in chosen]
    assert avg["averaged_by"] == metric
    assert [i.epoch for i in select_checkpoints(exp_dir, 2, metric)] == chosen


def test_best_by_and_last_do_not_overwrite_each_other(exp_dir):
    assert main([str(exp_dir), "--num", "2"]) == 0
    assert main([str(exp_dir), "--num", "2", "--best-by", "dev_loss"]) == 0
    assert load(exp_dir / "avg_2.pt")["averaged_from"] == ["epoch_3.pt", "epoch_4.pt"]
    assert load(exp_dir / "avg_best_dev_loss_2.pt")["averaged_from"] == ["epoch_2.pt",
                                                                         "epoch_4.pt"]


def test_ties_go_to_the_newer_epochs(tmp_path):
    """A model that never got a word right: dev_wer 100 at every epoch. The best 2 are the
    newest 2 (as with --last), not the first two."""
    manager = CheckpointManager(tmp_path / "checkpoints", keep_last=10, keep_best=0,
                                best_metric="dev_wer")
    for epoch in range(1, 5):
        manager.save({"model": {"w": torch.full((2,), float(epoch))}, "config": {},
                      "epoch": epoch, "step": 10 * epoch, "epoch_complete": True,
                      "metrics": {"dev_wer": 100.0, "dev_acc": 0.5}}, "epoch")
    assert [i.epoch for i in select_checkpoints(tmp_path, 2, "dev_wer")] == [3, 4]
    assert [i.epoch for i in select_checkpoints(tmp_path, 2, "dev_acc")] == [3, 4]
    assert main([str(tmp_path), "--num", "2", "--best-by", "dev_wer"]) == 0
    assert torch.equal(load(tmp_path / "avg_best_dev_wer_2.pt")["model"]["w"],
                       torch.full((2,), 3.5))


def test_more_than_there_are_is_an_error_naming_how_many(exp_dir, capsys):
    assert main([str(exp_dir), "--num", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asrkit average: --num 5: ") and err.count("\n") == 1
    assert "holds only 4 epoch checkpoint(s)" in err and "use --num 4" in err
    assert not (exp_dir / "avg_5.pt").exists() and not (exp_dir / "avg_4.pt").exists()


@pytest.mark.parametrize("name", ["epoch_3.pt", "step_120.pt", "last.pt"])
def test_out_named_as_a_training_checkpoint_is_refused(exp_dir, capsys, name):
    target = exp_dir / "checkpoints" / name
    before = target.read_bytes() if target.exists() else None
    assert main([str(exp_dir), "--num", "2", "--out", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"asrkit average: --out: {target} is named as a training checkpoint (epoch_N.pt, "
        f"step_N.pt, last.pt), which the trainer resumes from; choose another name\n")
    assert (target.read_bytes() if target.exists() else None) == before


def test_unknown_metric_and_empty_experiment_are_errors(exp_dir, tmp_path, capsys):
    assert main([str(exp_dir), "--num", "2", "--best-by", "dev_bleu"]) == 2
    assert "dev_bleu" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--num", "2"]) == 2


def test_average_state_dicts_rejects_mismatched_parameters():
    with pytest.raises(ValueError, match="other parameters"):
        average_state_dicts([{"a": torch.ones(1)}, {"b": torch.ones(1)}])
    with pytest.raises(ValueError, match=r"checkpoint 0's a is \(2,\), the newest one's \(3,\)"):
        average_state_dicts([{"a": torch.ones(2)}, {"a": torch.ones(3)}])


def test_two_models_in_one_directory_a_gap_and_a_directory_as_out(exp_dir, capsys, caplog):
    (exp_dir / "checkpoints" / "epoch_3.pt").unlink()
    assert main([str(exp_dir), "--num", "2"]) == 0
    assert "the newest 2 epoch checkpoints are epochs 2, 4, not consecutive" in caplog.text
    state = load(exp_dir / "checkpoints" / "epoch_4.pt")
    state["model"]["w"] = torch.zeros(5, 4)
    atomic_save(state, exp_dir / "checkpoints" / "epoch_4.pt")  # another model's, recorded
    capsys.readouterr()
    assert main([str(exp_dir), "--num", "2", "--out", str(exp_dir / "other.pt")]) == 1
    # (the files, not the command, are at fault: exit 1) the last line: the gap's warning goes first, to whatever handler logging has
    assert capsys.readouterr().err.splitlines()[-1] == (
        "asrkit average: checkpoint 0's w is (3, 4), the newest one's (5, 4): not one model "
        "(0: epoch_2.pt; 1: epoch_4.pt)")
    (exp_dir / "a_dir").mkdir()
    (exp_dir / "checkpoints" / "epoch_4.pt").unlink()
    assert main([str(exp_dir), "--num", "1", "--out", str(exp_dir / "a_dir")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("asrkit average: ") and "a_dir" in err


@pytest.mark.parametrize("damage", ["no model", "weights of text", "a section of a number"])
def test_a_checkpoint_without_weights_is_one_line_naming_it(exp_dir, capsys, damage):
    path = exp_dir / "checkpoints" / "epoch_3.pt"
    checkpoint = load(path)
    if damage == "no model":
        del checkpoint["model"]
    elif damage == "weights of text":
        checkpoint["model"]["w"] = "text"
    else:  # a config nothing could load (the newest's would be the average's)
        checkpoint["config"]["encoder"] = 3
    atomic_save(checkpoint, path)  # its hash matches: the content, not the bytes, is wrong
    assert main([str(exp_dir), "--num", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: not a checkpoint asrkit wrote (" in err and "--skip-corrupt" in err
    assert not (exp_dir / "avg_3.pt").exists()
    # as the error says, --skip-corrupt leaves it out (and averages the three before it)
    assert main([str(exp_dir), "--num", "3", "--skip-corrupt"]) == 0
    assert load(exp_dir / "avg_3.pt")["averaged_from"] == ["epoch_1.pt", "epoch_2.pt",
                                                           "epoch_4.pt"]


def test_an_average_written_outside_the_experiment_is_not_its_model_and_says_so(
        exp_dir, tmp_path_factory, capsys):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "mine.pt"
    assert main([str(exp_dir), "--num", "2", "--out", str(elsewhere)]) == 0
    assert elsewhere.is_file() and not (exp_dir / "averaged.json").exists()
    assert f"{elsewhere} lies outside {exp_dir}, so it is not the experiment's model" in \
        capsys.readouterr().err
    assert main([str(exp_dir), "--num", "2", "--out", str(exp_dir / "mine.pt")]) == 0
    assert "lies outside" not in capsys.readouterr().err
    assert json.loads((exp_dir / "averaged.json").read_text())["checkpoint"] == "mine.pt"
