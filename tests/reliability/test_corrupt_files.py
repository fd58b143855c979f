"""Corrupt or mismatched files: a checkpoint corrupted mid-file (same size) is recognised by
its content hash, passed over on resume (with a warning naming both) and refused by
average and decode; a tokenizer with other units is refused at decode."""

from __future__ import annotations

import shutil

import pytest
import torch

from asrkit.bin.average import main as average
from asrkit.bin.decode import main as decode
from asrkit.bin.train import main as train
from asrkit.checkpoint_io import verify
from asrkit.text.registry import train_tokenizer


def _corrupt_mid_file(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # same size, other bytes
    path.write_bytes(bytes(data))


@pytest.fixture
def trained(corpus, tmp_path):
    exp = tmp_path / "exp"
    args = corpus.overrides(exp, "trainer.max_epochs=2", "trainer.tensorboard=false")
    assert train(args) == 0
    return exp, corpus.overrides(exp, "trainer.max_epochs=3", "trainer.tensorboard=false")


def test_resume_passes_over_a_corrupt_newest_checkpoint(trained, caplog):
    exp, three_epochs = trained
    newest, older = exp / "checkpoints" / "epoch_2.pt", exp / "checkpoints" / "epoch_1.pt"
    assert verify(newest) is True
    _corrupt_mid_file(newest)
    assert verify(newest) is False
    assert train(three_epochs) == 0
    log = (exp / "train.log").read_text()
    assert f"checkpoint {newest} is corrupt" in log and f"resuming from {older} instead" in log
    assert f"resumed from {older} at the start of epoch 2" in log
    assert torch.load(exp / "checkpoints" / "epoch_3.pt", weights_only=True)["epoch"] == 3


def test_average_refuses_a_corrupt_checkpoint_unless_told(trained, capsys):
    exp, _ = trained
    _corrupt_mid_file(exp / "checkpoints" / "epoch_1.pt")
    assert average([str(exp), "--num", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epoch_1.pt: corrupt or unreadable checkpoint" in err
    assert not (exp / "avg_2.pt").exists()
    assert average([str(exp), "--num", "1", "--skip-corrupt"]) == 0
    assert torch.load(exp / "avg_1.pt", weights_only=True)["averaged_from"] == ["epoch_2.pt"]


def test_average_refuses_a_truncated_newest_checkpoint(trained, capsys):
    """Today's average silently took epoch 1 for a truncated epoch 2."""
    exp, _ = trained
    newest = exp / "checkpoints" / "epoch_2.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    assert average([str(exp), "--num", "1"]) == 1
    assert "epoch_2.pt: corrupt or unreadable checkpoint" in capsys.readouterr().err
    assert not (exp / "avg_1.pt").exists()


def test_a_tokenizer_with_other_units_is_refused(trained, corpus, capsys):
    exp, _ = trained
    own = (exp / "tokenizer")
    units = [u.split()[0] for u in (own / "units.txt").read_text().splitlines()]
    shuffled = train_tokenizer(["".join(reversed(units[3:]))], "char", None)
    assert shuffled.vocab_size == len(units) and shuffled.units != units
    shutil.rmtree(own)
    shuffled.save(own)
    status = decode([f"exp_dir={exp}", "checkpoint=checkpoints/epoch_2.pt",
                     "methods=[ctc_greedy]", f"test_sets=[{corpus.dev}]"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert f"{own}: other units than the tokenizer the model" in err


def test_decode_refuses_a_checkpoint_corrupted_inside_its_weights(trained, corpus, capsys):
    """Zeroed bytes in the middle of the weights still load with torch.load: the recorded
    hash is what finds them, before anything is decoded with the damaged model."""
    exp, _ = trained
    checkpoint = exp / "checkpoints" / "epoch_2.pt"
    _corrupt_mid_file(checkpoint)
    assert isinstance(torch.load(checkpoint, weights_only=True), dict)  # loads regardless
    status = decode([f"exp_dir={exp}", "checkpoint=checkpoints/epoch_2.pt",
                     "methods=[ctc_greedy]", f"test_sets=[{corpus.dev}]"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert f"{checkpoint}: corrupt checkpoint (its content differs from its recorded hash" in err
    assert not (exp / "decode" / "epoch_2").exists()
    # through checkpoints/last.pt (a symlink to it: the default checkpoint without an
    # average) the hash beside the file it points to is checked too
    assert (exp / "checkpoints" / "last.pt").resolve() == checkpoint
    for named in (["checkpoint=last.pt"], []):
        status = decode([f"exp_dir={exp}", *named, "methods=[ctc_greedy]",
                         f"test_sets=[{corpus.dev}]"])
        err = capsys.readouterr().err
        assert status == 1 and "corrupt checkpoint (its content differs from its recorded " \
            "hash epoch_2.pt.sha256)" in err
    assert verify(exp / "checkpoints" / "last.pt") is False
