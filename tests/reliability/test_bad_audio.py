"""Bad audio cannot poison a model: NaN/inf samples and truncated files are rejected per
utterance when loaded (named, counted toward data.max_fail_fraction), a skipped batch leaves
no trace in the model, and no checkpoint is ever written with non-finite weights."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asrkit.data.loader import build_loader
from asrkit.data.manifest import read_manifest, write_manifest
from asrkit.decoding.decode_set import decode_utterances
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods
from asrkit.text.registry import load_tokenizer
from asrkit.training.run import run_training
from asrkit.training.trainer import Trainer


def _copy_corpus(corpus, root):
    """The session corpus's train/dev manifests with their audio copied under ``root``."""
    root.mkdir()
    for split in ("train", "dev"):
        utterances = []
        for utt in read_manifest(getattr(corpus, split)):
            target = root / f"{utt.id}.wav"
            shutil.copy(utt.audio, target)
            utterances.append(replace(utt, audio=str(target)))
        write_manifest(root / f"{split}.jsonl", utterances)
    return root / "train.jsonl", root / "dev.jsonl"


def _nan_wav(path):
    wave, rate = sf.read(path, dtype="float32")
    wave[len(wave) // 2] = np.nan
    sf.write(path, wave, rate, subtype="FLOAT")


def test_non_finite_and_truncated_audio_are_named_and_skipped(corpus, tmp_path, caplog):
    train, _ = _copy_corpus(corpus, tmp_path / "data")
    utterances = read_manifest(train)
    _nan_wav(utterances[0].audio)
    truncated = Path(utterances[1].audio)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # same header
    data_cfg = corpus.config(tmp_path / "exp", "data.max_fail_fraction=0.5")["data"]
    loader = build_loader(train, load_tokenizer(corpus.tokenizer), data_cfg, train=True)
    loader.set_epoch(1)
    for batch in loader:
        if batch["ids"]:
            assert bool(torch.isfinite(batch["feats"]).all())
    reasons = dict(loader.failed)
    assert set(reasons) == {utterances[0].id, utterances[1].id}
    assert "non-finite samples (NaN/inf)" in reasons[utterances[0].id]
    assert "truncated: its header declares" in reasons[utterances[1].id]
    assert f"skipped utterance {utterances[0].id}" in caplog.text


def _train(config: dict) -> Trainer:
    trainer = Trainer(config)
    try:
        trainer.setup()
        assert trainer.train() == 0
    finally:
        trainer.cleanup()
    return trainer


def test_nan_audio_leaves_the_model_as_a_run_that_never_read_it(corpus, tmp_path):
    """One run has a NaN wav, the other the same utterance missing from disk: both skip it
    at load time, so the models are bit-identical (BatchNorm statistics included), finite,
    and the run goes on (with a max_fail_fraction that allows one failure)."""
    states = []
    for name, spoil in (("nan", _nan_wav), ("missing", lambda p: __import__("os").remove(p))):
        train, dev = _copy_corpus(corpus, tmp_path / name)
        spoil(read_manifest(train)[3].audio)
        config = corpus.config(tmp_path / f"exp_{name}", "trainer.max_epochs=1",
                               "encoder=conformer", "encoder.num_layers=1",
                               "encoder.d_model=32", "encoder.num_heads=2",
                               "encoder.ffn_dim=64", "encoder.kernel_size=3",
                               "data.max_fail_fraction=0.1", f"data.train={train}",
                               f"data.dev={dev}")
        states.append(_train(config).model.state_dict())
    assert any("norm.running_mean" in k for k in states[0])  # the Conformer's BatchNorm
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
        if value.is_floating_point():
            assert bool(torch.isfinite(value).all()), key


def test_a_skipped_batch_leaves_no_trace_in_the_model(corpus, tmp_path):
    """The second batch's forward pass runs (updating BatchNorm's running statistics), then
    its loss is NaN: after its update (a no-op, decided on the device) every weight and
    buffer is as before that forward pass."""
    config = corpus.config(tmp_path / "exp", "trainer.max_epochs=1", "encoder=conformer",
                           "encoder.num_layers=1", "encoder.d_model=32",
                           "encoder.num_heads=2", "encoder.ffn_dim=64", "encoder.kernel_size=3")
    trainer = Trainer(config)
    trainer.setup()
    calls, before, after = {"n": 0}, {}, {}
    forward = trainer.steps.train_model.forward

    def nan_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            before.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        out = forward(*args, **kwargs)
        if calls["n"] == 2:
            out["loss"] = out["loss"] * float("nan")
        return out

    update, updates = trainer.steps.update, {"n": 0}

    def recording_update():
        norm = update()
        updates["n"] += 1
        if updates["n"] == 2:  # the second batch's update (accum_grad 1)
            after.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
        return norm

    trainer.steps.train_model.forward = nan_on_second
    trainer.steps.update = recording_update
    try:
        assert trainer.train() == 0
    finally:
        trainer.cleanup()
    assert trainer.counters["nan_skipped"] == 1
    moved = [k for k in before if "running_mean" in k and not torch.equal(before[k], after[k])]
    assert before and moved == []
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_no_checkpoint_is_written_with_non_finite_weights(corpus, tmp_path, capsys):
    config = corpus.config(tmp_path / "exp", "trainer.max_epochs=2")
    original_setup = Trainer.setup

    def poison_after_setup(self):
        original_setup(self)
        update = self.steps.update

        def poisoned_update():
            norm = update()
            if self.state.step == 3:
                with torch.no_grad():
                    next(self.model.parameters()).fill_(float("nan"))
            return norm

        self.steps.update = poisoned_update

    Trainer.setup = poison_after_setup
    try:
        assert run_training(config) == 1
    finally:
        Trainer.setup = original_setup
    exp = tmp_path / "exp"
    assert not list((exp / "checkpoints").glob("epoch_*.pt"))
    log = (exp / "train.log").read_text()
    assert "holds NaN/inf values since the run started (no checkpoint was written)" in log
    assert "encoder." in log.split("model tensor ")[1].split(" ")[0]


def test_decoding_counts_nan_audio_as_failed(make_experiment, synth_dir, tmp_path):
    exp = load_experiment(make_experiment(tmp_path / "exp", synth_dir / "train.jsonl"),
                          "avg_2.pt")
    utterances = read_manifest(synth_dir / "test.jsonl")
    bad = tmp_path / "bad.wav"
    shutil.copy(utterances[0].audio, bad)
    _nan_wav(bad)
    utterances[0] = replace(utterances[0], audio=str(bad))
    result = decode_utterances(exp.model, exp.tokenizer, utterances, exp.extractor,
                               search_methods(["ctc_greedy"], model=exp.model), exp.cmvn)
    assert [uid for uid, _ in result.failed] == [utterances[0].id]
    assert "non-finite samples" in result.failed[0][1]
    assert result.hyps["ctc_greedy"][utterances[0].id] == ""
