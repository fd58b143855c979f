"""Resuming a run after something changed: the batching (another max_frames or accum_grad),
the schedule's settings, the model, the tokenizer of an init_from source, or a checkpoint
older than others in the directory; and the epoch's training means across a resume."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace

import pytest
import torch

from asrkit.data.manifest import read_manifest, write_manifest
from asrkit.training.checkpoint import list_checkpoints
from asrkit.training.train_step import TrainingError
from asrkit.training.trainer import Trainer
from tests.training.test_trainer import record_rates, run


def setup_error(config: dict, error: type = ValueError) -> str:
    trainer = Trainer(config)
    try:
        with pytest.raises(error) as raised:
            trainer.setup()
    finally:
        trainer.cleanup()
    return str(raised.value)


def test_fewer_updates_per_epoch_after_a_resume_never_train_at_rate_0(corpus, tmp_path):
    """Two epochs, then a third with accum_grad 2: 3 epochs at the new rate make fewer
    updates than the two already done, and that schedule would have ended (rate 0)."""
    exp = tmp_path / "exp"
    status, first = run(corpus.config(exp, "trainer.max_epochs=2"))
    done = first.step
    rates: list[float] = []
    status, trainer = run(corpus.config(exp, "trainer.max_epochs=3", "trainer.accum_grad=2"),
                          patch=record_rates(rates))
    assert status == 0 and 3 * trainer.updates_per_epoch < done
    assert trainer.total_steps == done + trainer.updates_per_epoch
    assert len(rates) == trainer.updates_per_epoch and all(rate > 0 for rate in rates)


def test_a_checkpoint_older_than_others_in_the_directory_is_refused(corpus, tmp_path):
    exp = tmp_path / "exp"
    run(corpus.config(exp, "trainer.max_epochs=3"))
    before = sorted(p.name for p in (exp / "checkpoints").iterdir())
    epoch_1 = exp / "checkpoints" / "epoch_1.pt"
    message = setup_error(corpus.config(exp, "trainer.max_epochs=3",
                                        f"trainer.resume={epoch_1}"))
    assert message.startswith(f"trainer.resume: {epoch_1} is at update ")
    assert "holds later checkpoints (epoch_2.pt, epoch_3.pt" in message
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == before
    # the newest, named explicitly, resumes
    newest = list_checkpoints(exp / "checkpoints")[-1].path
    assert run(corpus.config(exp, "trainer.max_epochs=4", f"trainer.resume={newest}"))[0] == 0


def test_changed_schedule_settings_or_model_are_named_on_resume(corpus, tmp_path):
    exp = tmp_path / "exp"
    run(corpus.config(exp, "trainer.max_epochs=1"))
    epoch_1 = exp / "checkpoints" / "epoch_1.pt"
    message = setup_error(corpus.config(exp, "trainer.max_epochs=2",
                                        "scheduler.min_lr_ratio=0.5"))
    assert message.startswith(f"scheduler.min_lr_ratio: 0.5 differs from the 0.0 that "
                              f"{epoch_1} was trained with; ")
    message = setup_error(corpus.config(exp, "trainer.max_epochs=2", "encoder.d_model=48"))
    assert message.startswith(f"{epoch_1}: cannot resume, the checkpoint is of another model "
                              "or optimiser (encoder.d_model: 48 differs from the "
                              "checkpoint's 32); ")
    # the schedule's length may change: it is applied
    status, trainer = run(corpus.config(exp, "trainer.max_epochs=2",
                                        "scheduler.total_steps=50"))
    assert status == 0 and trainer.state.scheduler.total_steps == 50


def test_init_from_a_model_of_other_units_of_the_same_count_is_refused(corpus, tmp_path):
    """The encoder's feed-forward width equals the number of units here: a dimension that
    merely equals it does not make a tensor one indexed by units."""
    from asrkit.text.registry import load_tokenizer

    width = f"encoder.ffn_dim={load_tokenizer(corpus.tokenizer).vocab_size}"
    run(corpus.config(tmp_path / "a", "trainer.max_epochs=1", width))
    source = tmp_path / "a" / "checkpoints" / "epoch_1.pt"
    other = tmp_path / "other_units"
    shutil.copytree(corpus.tokenizer, other)
    units = (other / "units.txt").read_text().splitlines()
    units[-1], units[-2] = units[-2], units[-1]  # two characters swap their ids
    (other / "units.txt").write_text("\n".join(units) + "\n")
    message = setup_error(corpus.config(tmp_path / "b", f"trainer.init_from={source}",
                                        f"tokenizer.dir={other}", width))
    assert message.startswith(f"trainer.init_from: {source} was trained with other units of "
                              "the same count (")
    assert "its ctc." in message or "its decoder." in message  # a unit-indexed tensor
    assert message.endswith("or load its encoder only (trainer.init_modules=[encoder])")
    assert not (tmp_path / "b").exists()  # found before the run touches exp_dir
    # the encoder alone transfers: its tensors are the source's, every other one is fresh
    trainer = Trainer(corpus.config(tmp_path / "c", f"trainer.init_from={source}",
                                    f"tokenizer.dir={other}", "trainer.init_modules=[encoder]",
                                    width))
    trainer.setup()
    try:
        weights = torch.load(source, weights_only=True)["model"]
        own = trainer.model.state_dict()
        encoder = [k for k in own if k.startswith("encoder.")]
        assert encoder and all(torch.equal(own[k], weights[k]) for k in encoder)
        rest = [k for k in own if not k.startswith("encoder.") and own[k].is_floating_point()
                and own[k].numel() > 1 and own[k].std() > 0]
        assert rest and not any(torch.equal(own[k], weights[k]) for k in rest)
    finally:
        trainer.cleanup()


def test_init_modules_name_the_checkpoint_modules_and_need_init_from(corpus, tmp_path):
    run(corpus.config(tmp_path / "a", "trainer.max_epochs=1"))
    source = tmp_path / "a" / "checkpoints" / "epoch_1.pt"
    message = setup_error(corpus.config(tmp_path / "b", f"trainer.init_from={source}",
                                        "trainer.init_modules=[encoder,encdoer]"))
    tops = sorted({k.split(".", 1)[0] for k in torch.load(source, weights_only=True)["model"]})
    assert message.startswith(f"trainer.init_modules: {source} has no tensor under 'encdoer' "
                              f"(its modules: {', '.join(tops)}; ")
    assert not (tmp_path / "b").exists()  # found before the run touches exp_dir
    # a dotted name selects part of a module: only that layer's tensors are the source's
    trainer = Trainer(corpus.config(tmp_path / "c", f"trainer.init_from={source}",
                                    "trainer.init_modules=[encoder.layers.0]"))
    trainer.setup()
    try:
        weights = torch.load(source, weights_only=True)["model"]
        same = {k for k, v in trainer.model.state_dict().items()
                if v.is_floating_point() and v.std() > 0 and torch.equal(v, weights[k])}
        assert same and all(k.startswith("encoder.layers.0.") for k in same)
    finally:
        trainer.cleanup()


def test_init_from_a_model_of_which_little_fits_is_a_warning(corpus, tmp_path):
    run(corpus.config(tmp_path / "a", "trainer.max_epochs=1"))
    source = tmp_path / "a" / "checkpoints" / "epoch_1.pt"
    for name, changes, warned in (("wider", ["encoder.d_model=48", "decoder.d_model=48"], True),
                                  ("same", ["encoder.dropout=0.2"], False)):
        trainer = Trainer(corpus.config(tmp_path / name, f"trainer.init_from={source}",
                                        *changes))
        trainer.setup()
        trainer.cleanup()
        log = (tmp_path / name / "train.log").read_text()
        assert (f"WARNING init_from {source}: only " in log) == warned


def test_a_mid_epoch_resume_with_other_batches_restarts_the_epoch(corpus, tmp_path, caplog):
    exp = tmp_path / "exp"
    status, _ = run(corpus.config(exp, "trainer.max_epochs=1"), stop_at_step=3)
    assert status == 143 and not torch.load(exp / "checkpoints" / "last.pt",
                                            weights_only=True)["epoch_complete"]
    with caplog.at_level(logging.WARNING):
        status, _ = run(corpus.config(exp, "trainer.max_epochs=1",
                                      "data.sampler.max_frames=3000"))
    assert status == 0
    assert ("the batches of epoch 1 differ from the checkpoint's (data.sampler.max_frames, the "
            "data or its filters changed); epoch 1 restarts from its first batch") in caplog.text


@pytest.mark.parametrize("stop_at", [3, "last"])
def test_the_epochs_train_loss_counts_the_batches_before_a_stop(corpus, tmp_path, stop_at):
    """Stopped mid-epoch (or during its last update) and resumed: epoch_1.pt's train_loss is
    the uninterrupted run's (the resume is exact), not the mean of the batches after it."""
    run(corpus.config(tmp_path / "straight", "trainer.max_epochs=1"))
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "epoch_1.pt",
                          weights_only=True)["metrics"]
    exp = tmp_path / "stopped"
    updates = torch.load(tmp_path / "straight" / "checkpoints" / "epoch_1.pt",
                         weights_only=True)["step"]
    status, _ = run(corpus.config(exp, "trainer.max_epochs=1"),
                    stop_at_step=updates if stop_at == "last" else stop_at)
    assert status == 143
    assert run(corpus.config(exp, "trainer.max_epochs=1"))[0] == 0
    resumed = torch.load(exp / "checkpoints" / "epoch_1.pt", weights_only=True)["metrics"]
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-9)
    assert resumed["train_loss_ctc"] == pytest.approx(straight["train_loss_ctc"], rel=1e-9)


def test_a_resume_with_nothing_changed_is_exact_when_epochs_differ_in_batches(corpus,
                                                                             tmp_path):
    """Epochs of 4, 4, 5, 5, 5 batches: the schedule is planned from epoch 1's 4 (a few
    updates past it run at the floor), and a resume keeps that plan, not a longer one."""
    settings = ("data.sampler.max_frames=2200", "data.sampler.num_buckets=2",
                "trainer.max_epochs=5")
    straight_status, straight = run(corpus.config(tmp_path / "straight", *settings))
    batches = []
    for epoch in range(1, 6):
        straight.train_loader.set_epoch(epoch)
        batches.append(len(straight.train_loader))
    assert straight_status == 0 and len(set(batches)) > 1  # the case this test is about
    exp = tmp_path / "resumed"
    assert run(corpus.config(exp, *settings), stop_at_step=15)[0] == 143
    status, resumed = run(corpus.config(exp, *settings))
    assert status == 0 and resumed.total_steps == straight.total_steps
    a = torch.load(tmp_path / "straight" / "checkpoints" / "epoch_5.pt", weights_only=True)
    b = torch.load(exp / "checkpoints" / "epoch_5.pt", weights_only=True)
    assert all(torch.equal(value, b["model"][name]) for name, value in a["model"].items())


def test_a_mid_epoch_resume_keeps_counting_the_epochs_load_failures(corpus, tmp_path):
    """Two training utterances cannot be read, in the first and third batches of epoch 1,
    and data.max_fail_fraction allows one: the epoch stops at the second whether or not a
    stop and a resume came between them (each rank's failures so far are in the step
    checkpoint)."""
    probe = Trainer(corpus.config(tmp_path / "probe"))
    probe.setup()  # the batches depend on durations alone, not on the audio
    try:
        ids = [u.id for u in probe.train_loader.dataset.utterances]
        batches = probe.train_loader.sampler.rank_batches()
        bad_ids = {ids[batches[0][0]], ids[batches[2][0]]}
    finally:
        probe.cleanup()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not a wav file")
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, [replace(u, audio=str(broken)) if u.id in bad_ids else u
                              for u in read_manifest(corpus.train)])
    overrides = (f"data.train={manifest}", "data.max_fail_fraction=0.05",
                 "trainer.max_epochs=1")
    with pytest.raises(TrainingError, match="2 of .* failed to load this epoch"):
        run(corpus.config(tmp_path / "whole", *overrides))
    exp = tmp_path / "resumed"
    status, _ = run(corpus.config(exp, *overrides), stop_at_step=2)
    assert status == 143
    with pytest.raises(TrainingError, match="2 of .* failed to load this epoch"):
        run(corpus.config(exp, *overrides))
