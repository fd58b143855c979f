"""Failures a user meets are one line naming the path, with the documented exit status
(2 usage, 1 runtime), and what was already written survives."""

from __future__ import annotations

import errno
import logging

import torch

from asrkit.bin.train import main as train
from asrkit.data.manifest import read_manifest, write_manifest
from asrkit.decoding.decode_set import decode_utterances
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods


def test_an_exp_dir_that_is_a_file(corpus, tmp_path, capsys):
    exp = tmp_path / "exp"
    exp.write_text("not a directory")
    assert train(corpus.overrides(exp, "trainer.max_epochs=1")) == 2
    err = capsys.readouterr().err
    assert err.startswith("asrkit train: ") and err.count("\n") == 1 and str(exp) in err
    assert "Traceback" not in err and exp.read_text() == "not a directory"


def test_an_exp_dir_that_cannot_be_written(corpus, capsys):
    exp = "/sys/asrkit-exp"  # not writable, even for root
    assert train(corpus.overrides(exp, "trainer.max_epochs=1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and exp in err and "Traceback" not in err


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_checkpoints(corpus, tmp_path,
                                                                          monkeypatch, capsys):
    from asrkit import checkpoint_io

    exp = tmp_path / "exp"
    save, calls = checkpoint_io.torch.save, {"n": 0}

    def full_on_second(obj, f):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(f.name))
        save(obj, f)

    monkeypatch.setattr(checkpoint_io.torch, "save", full_on_second)
    assert train(corpus.overrides(exp, "trainer.max_epochs=2")) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "No space left on device" in x)
    assert "epoch_2.pt" in line and "Traceback" not in err
    assert "No space left on device" in (exp / "train.log").read_text()
    first = exp / "checkpoints" / "epoch_1.pt"
    assert torch.load(first, weights_only=True)["epoch"] == 1  # survived, loads
    assert not list((exp / "checkpoints").glob(".*tmp*"))


def test_a_long_utterance_is_named_for_the_attention_searches(make_experiment, synth_dir,
                                                              tmp_path, caplog):
    exp = load_experiment(make_experiment(tmp_path / "exp", synth_dir / "train.jsonl"),
                          "avg_2.pt")
    utterances = read_manifest(synth_dir / "test.jsonl")[:1]
    long = [utterances[0].__class__(**{**utterances[0].__dict__, "duration": 75.0})]
    write_manifest(tmp_path / "m.jsonl", long)
    methods = search_methods(["ctc_greedy", "attention_rescoring"], ["beam=2"], exp.model)
    with caplog.at_level(logging.WARNING):
        decode_utterances(exp.model, exp.tokenizer, long, exp.extractor, methods, exp.cmvn)
    assert (f"utterance {long[0].id} is 75 s long: attention_rescoring grow with the square "
            "of its length") in caplog.text
