"""A full disk while writing: one line naming the file and the free space, nothing left
half-written, and what was there before kept (the write goes to a temporary name first)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from asrkit.atomic_text import write_text_atomic
from asrkit.checkpoint_io import atomic_save


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_checkpoint_that_does_not_fit_names_its_file(tmp_path, monkeypatch):
    path = atomic_save({"w": torch.ones(3)}, tmp_path / "epoch_1.pt")
    before = path.read_bytes()
    # what torch.save raises when the disk fills up mid-file
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")))
    with pytest.raises(OSError, match=rf"^{path}: could not be written \(.* MiB free there\): "
                                      r"\[enforce fail"):
        atomic_save({"w": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pt", "epoch_1.pt.sha256"]


def test_a_text_file_that_does_not_fit_names_its_file(tmp_path, monkeypatch):
    path = write_text_atomic(tmp_path / "results.md", "old\n")
    monkeypatch.setattr(Path, "write_text", _disk_full)
    with pytest.raises(OSError, match=rf"^{path}: could not be written \(.*\): No space left"):
        write_text_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["results.md"]


def test_training_stops_with_one_line_naming_the_checkpoint(corpus, tmp_path, monkeypatch):
    """Exit 1 and one ERROR line in train.log (and on stderr), where torch's own error named
    no file and escaped as a traceback."""
    from asrkit.training.run import run_training

    config = corpus.config(tmp_path / "exp", "trainer.max_epochs=1", "trainer.tensorboard=false")
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0")))
    assert run_training(config) == 1
    errors = [line for line in (tmp_path / "exp" / "train.log").read_text().splitlines()
              if " ERROR " in line]
    checkpoint = tmp_path / "exp" / "checkpoints" / "epoch_1.pt"
    assert len(errors) == 1 and errors[0].endswith(
        "MiB free there): [enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0")
    assert f"ERROR asrkit train: {checkpoint}: could not be written (" in errors[0]
    assert not any((tmp_path / "exp" / "checkpoints").iterdir())


def test_a_tokenizer_or_cmvn_that_does_not_fit_keeps_the_old_one(tmp_path, monkeypatch,
                                                                  capsys):
    """A failed save used to leave spm.model cut short beside the old units (tokenizer) and
    cmvn.json cut to a block (the cmvn command printed a traceback)."""
    from asrkit.data.cmvn import GlobalCMVN
    from asrkit.text.registry import load_tokenizer, train_tokenizer

    texts = ["the cat sat on the mat", "a dog ran in the house"] * 20
    old = train_tokenizer(texts, "bpe", 30).save(tmp_path / "tok")
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    monkeypatch.setattr(Path, "write_text", _disk_full)  # tokenizer.json, the last file
    with pytest.raises(OSError, match=rf"^{old}: could not be written"):
        train_tokenizer(texts[:10], "bpe", 25).save(old)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert load_tokenizer(old).vocab_size == 30
    cmvn = tmp_path / "cmvn.json"
    GlobalCMVN(torch.zeros(4), torch.ones(4), 10, 1).save(cmvn)
    text = cmvn.read_text()
    monkeypatch.setattr(Path, "write_text", _disk_full)
    with pytest.raises(OSError, match=rf"^{cmvn}: could not be written"):
        GlobalCMVN(torch.ones(4), torch.ones(4), 10, 1).save(cmvn)
    monkeypatch.undo()
    assert cmvn.read_text() == text


def test_average_compare_and_decode_on_a_full_disk_are_exit_1_naming_the_file(
        tmp_path, monkeypatch, capsys, make_experiment, synth_dir):
    """They answered exit 2 (a usage error) or a bare "[Errno 28]" naming no file."""
    from matplotlib.figure import Figure

    from asrkit.bin.average import main as average
    from asrkit.bin.compare import main as compare
    from asrkit.bin.decode import main as decode
    from asrkit.training.checkpoint import CheckpointManager

    manager = CheckpointManager(tmp_path / "avg" / "checkpoints", keep_last=10, keep_best=0,
                                best_metric="dev_loss")
    for epoch in (1, 2):
        manager.save({"model": {"w": torch.full((3,), float(epoch))}, "config": {},
                      "epoch": epoch, "step": epoch, "epoch_complete": True,
                      "train_hours": 0.1, "metrics": {"dev_loss": 1.0}}, "epoch")
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0")))
    assert average([str(tmp_path / "avg"), "--num", "2", "--out", str(tmp_path / "a.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit average: {tmp_path / 'a.pt'}: could not be written (")
    monkeypatch.undo()

    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    test_set = [f"test_sets=[{synth_dir / 'test.jsonl'}]", "methods=[ctc_greedy]"]
    monkeypatch.setattr(Path, "write_text", _disk_full)  # hyp.txt, the first file
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", f"out_dir={tmp_path / 'od'}",
                   *test_set]) == 1
    err = capsys.readouterr().err
    assert "could not be written (" in err and str(tmp_path / "od") in err
    monkeypatch.undo()
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", *test_set]) == 0
    capsys.readouterr()
    for option, path, failing in (("--pairs-csv", tmp_path / "p.csv", (Path, "write_text")),
                                  ("--plot", tmp_path / "p.png", (Figure, "savefig"))):
        monkeypatch.setattr(*failing, _disk_full)
        assert compare([str(exp), option, str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"asrkit compare: {path}: could not be written (") and \
            err.endswith("No space left on device\n")
        monkeypatch.undo()
        assert not path.exists()
