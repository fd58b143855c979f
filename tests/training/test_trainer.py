"""The training loop on a tiny model and a 30-utterance synth corpus (CPU)."""

from __future__ import annotations

import logging
import platform
import re
import shutil
import signal

import pytest
import torch

from asrkit.training.checkpoint import list_checkpoints
from asrkit.training.trainer import Trainer, TrainingError


def run(config: dict, stop_at_step: int | None = None, patch=None) -> tuple[int, Trainer]:
    """Train; with ``stop_at_step``, act as if SIGTERM arrived during that update (a signal
    is noticed by the next micro-batch, and the update it belongs to is finished)."""
    trainer = Trainer(config)
    trainer.setup()
    if patch is not None:
        patch(trainer)
    if stop_at_step is not None:
        update = trainer.steps.update

        def update_then_signal():
            norm = update()
            if trainer.step == stop_at_step - 1:
                trainer.stop.signum = signal.SIGTERM
            return norm

        trainer.steps.update = update_then_signal
    try:
        return trainer.train(), trainer
    finally:
        trainer.cleanup()


def model_state(exp_dir) -> dict:
    return torch.load(exp_dir / "checkpoints" / "last.pt", weights_only=True)


def assert_same_training_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]


def test_loss_decreases_and_checkpoints_hold_metrics(corpus, tmp_path):
    status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=4",
                                        "optim.lr=0.005"))
    assert status == 0
    infos = [i for i in list_checkpoints(tmp_path / "exp" / "checkpoints") if i.kind == "epoch"]
    assert [i.epoch for i in infos] == [1, 2, 3, 4]
    first, last = infos[0].metrics, infos[-1].metrics
    assert last["train_loss"] < 0.9 * first["train_loss"]
    assert last["dev_loss"] < first["dev_loss"]
    for key in ("dev_loss", "dev_loss_ctc", "dev_loss_att", "dev_acc", "dev_wer", "dev_cer",
                "train_hours", "epoch", "step"):
        assert key in last
    assert 0.0 <= last["dev_wer"] and last["train_hours"] > 0 and last["step"] == trainer.step
    ckpt = model_state(tmp_path / "exp")  # weights_only=True loads it
    assert ckpt["config"]["vocab_size"] == 27 and ckpt["epoch_complete"]
    assert isinstance(ckpt["config"]["tokenizer"]["dir"], str)


def test_resume_mid_epoch_is_bit_exact(corpus, tmp_path):
    extra = ("trainer.max_epochs=2", "trainer.accum_grad=2")
    assert run(corpus.config(tmp_path / "a", *extra))[0] == 0
    # interrupted after update 2 (of 3 in epoch 1, at batch 4 of 6), then resumed
    status, trainer = run(corpus.config(tmp_path / "b", *extra), stop_at_step=2)
    assert status == 128 + signal.SIGTERM
    stopped = model_state(tmp_path / "b")
    assert stopped["step"] == 2 and not stopped["epoch_complete"]
    assert stopped["loader"]["position"] == 4
    status, trainer = run(corpus.config(tmp_path / "b", *extra))
    assert status == 0 and trainer.step == 6
    assert_same_training_state(model_state(tmp_path / "a"), model_state(tmp_path / "b"))


def test_resume_from_an_epoch_checkpoint_is_bit_exact(corpus, tmp_path):
    extra = ("trainer.max_epochs=2", "scheduler=noam", "scheduler.warmup_steps=5")
    assert run(corpus.config(tmp_path / "a", *extra))[0] == 0
    epoch_1 = tmp_path / "epoch_1.pt"
    shutil.copy(tmp_path / "a" / "checkpoints" / "epoch_1.pt", epoch_1)
    status, trainer = run(corpus.config(tmp_path / "b", *extra, f"trainer.resume={epoch_1}"))
    assert status == 0 and trainer.epoch == 2
    assert_same_training_state(model_state(tmp_path / "a"), model_state(tmp_path / "b"))


def test_nan_loss_is_skipped_and_counted(corpus, tmp_path):
    calls = {"n": 0}

    def nan_on_second_batch(trainer):
        forward = trainer.steps.train_model.forward

        def patched(*args, **kwargs):
            out = forward(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 2:
                out["loss"] = out["loss"] * float("nan")
            return out

        trainer.steps.train_model.forward = patched

    status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1"),
                          patch=nan_on_second_batch)
    assert status == 0
    assert trainer.counters["nan_skipped"] == 1
    assert trainer.step == len(trainer.train_loader) - 1  # one update fewer
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_losses_in_a_row_stop_the_run(corpus, tmp_path):
    def always_nan(trainer):
        forward = trainer.steps.train_model.forward
        trainer.steps.train_model.forward = lambda *a, **k: {**forward(*a, **k),
                                                       "loss": torch.tensor(float("inf"))}

    with pytest.raises(TrainingError, match="3 non-finite losses or gradient norms in a row"):
        run(corpus.config(tmp_path / "exp", "trainer.max_nan_in_a_row=3"), patch=always_nan)


def test_out_of_memory_batch_is_skipped_with_its_shape(corpus, tmp_path, caplog):
    def oom_on_first_batch(trainer):
        forward = trainer.steps.train_model.forward
        calls = {"n": 0}

        def patched(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return forward(*args, **kwargs)

        trainer.steps.train_model.forward = patched

    with caplog.at_level(logging.WARNING, logger="asrkit"):
        logging.getLogger("asrkit").addHandler(caplog.handler)
        status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1"),
                              patch=oom_on_first_batch)
    assert status == 0 and trainer.counters["oom_skipped"] == 1
    assert trainer.step == len(trainer.train_loader) - 1
    assert any("out of memory" in r.message and "feats (" in r.message for r in caplog.records)


def test_every_scalar_term_reaches_the_log(corpus, tmp_path):
    """A term the model adds (as InterCTC or MoE losses do) is logged without trainer changes."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def extra_term(trainer):
        forward = trainer.model.forward

        def patched(*args, **kwargs):
            out = forward(*args, **kwargs)
            return {**out, "loss_extra": out["loss"].detach() * 0 + 7.0}

        trainer.model.forward = patched

    _, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1"), patch=extra_term)
    events = EventAccumulator(str(tmp_path / "exp" / "tensorboard"),
                              size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/loss_ctc", "train/loss_att", "train/acc", "train/lr",
            "train/grad_norm", "train/frames_per_s", "train/loss_extra", "dev/loss",
            "dev/loss_extra", "dev/wer", "dev/cer"} <= scalars
    assert events.Scalars("train/loss_extra")[0].value == pytest.approx(7.0)
    # the rate logged with update 1 is the one it used: lr * 1/warm-up (warmup_linear; this
    # short run's warm-up is cut to 1 update, so the peak), not update 2's (already lower)
    first, second = events.Scalars("train/lr")[:2]
    warmup = trainer.state.scheduler.warmup_steps
    assert (first.step, second.step) == (1, 2) and second.value != first.value
    assert first.value == pytest.approx(0.002 / warmup, rel=1e-6)
    images = set(events.Tags()["images"])
    assert "attention/decoder_cross/layer0" in images
    assert any(tag.startswith("attention/encoder_self/layer0_head") for tag in images)
    log_text = (tmp_path / "exp" / "train.log").read_text()
    assert "loss_extra 7" in log_text and "WER" in log_text


def test_step_checkpoints_and_mid_epoch_validation(corpus, tmp_path):
    status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1",
                                        "trainer.save_interval_steps=2",
                                        "trainer.valid_interval=4"))
    assert status == 0 and trainer.step == 6  # 6 batches in the epoch
    step_2 = torch.load(tmp_path / "exp" / "checkpoints" / "step_2.pt", weights_only=True)
    assert step_2["step"] == 2 and step_2["loader"]["position"] == 2
    assert not step_2["epoch_complete"]
    step_4 = torch.load(tmp_path / "exp" / "checkpoints" / "step_4.pt", weights_only=True)
    assert "dev_loss" in step_4["metrics"] and step_4["loader"]["position"] == 4
    log_text = (tmp_path / "exp" / "train.log").read_text()
    assert re.findall(r"update (\d+) dev: ", log_text) == ["4", "6"]  # and the epoch end


def test_init_from_loads_weights_and_starts_afresh(corpus, tmp_path):
    run(corpus.config(tmp_path / "a", "trainer.max_epochs=1"))
    source = tmp_path / "a" / "checkpoints" / "epoch_1.pt"
    trainer = Trainer(corpus.config(tmp_path / "b", f"trainer.init_from={source}"))
    trainer.setup()
    try:
        weights = torch.load(source, weights_only=True)["model"]
        assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())
        assert trainer.step == 0 and trainer.epoch == 1
    finally:
        trainer.cleanup()


def test_resume_refuses_to_mix_runs_ignore_options_or_continue_a_model(corpus, tmp_path):
    """trainer.resume=none over another run's checkpoints, a changed optim.lr (the restored
    optimiser state would override it), an averaged model or a text file: one error naming
    the key or file, before anything is written (config.yaml keeps the old run's lr)."""
    from asrkit.checkpoint_io import CorruptCheckpointError

    exp = tmp_path / "exp"
    assert run(corpus.config(exp, "trainer.max_epochs=1"))[0] == 0
    epoch_1 = exp / "checkpoints" / "epoch_1.pt"
    config_yaml = (exp / "config.yaml").read_text()
    lr = torch.load(epoch_1, weights_only=True)["config"]["optim"]["lr"]
    averaged = tmp_path / "avg.pt"
    torch.save({"model": torch.load(epoch_1, weights_only=True)["model"]}, averaged)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    cases = [
        (("trainer.resume=none",), ValueError,
         (rf"^trainer.resume: none, but {exp / 'checkpoints'} holds another run's checkpoints "
         rf"\(epoch_1.pt, last.pt\); train into another exp_dir")),
        (("trainer.max_epochs=2", "optim.lr=0.0001"), ValueError,
         (rf"^optim.lr: 0.0001 differs from the {lr} that {epoch_1} was trained with; .* "
         rf"trainer.init_from={epoch_1}$")),
        ((f"trainer.resume={averaged}",), CorruptCheckpointError,
         rf"^{averaged}: not a training checkpoint \(no optimizer: an averaged model"),
        ((f"trainer.resume={text}",), CorruptCheckpointError,
         rf"^{text}: corrupt or unreadable checkpoint"),
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases.append(((f"data.dev={empty}", "trainer.max_epochs=2"), ValueError,
                  rf"^data.dev: {empty} gives no batch \(no utterances"))
    for overrides, error, message in cases:
        trainer = Trainer(corpus.config(exp, *overrides))
        try:
            with pytest.raises(error, match=message):
                trainer.setup()
        finally:
            trainer.cleanup()
        assert (exp / "config.yaml").read_text() == config_yaml
    # a rerun with nothing left to train leaves the run's config.yaml as it was
    assert run(corpus.config(exp, "trainer.max_epochs=1", "trainer.log_interval=7"))[0] == 0
    assert (exp / "config.yaml").read_text() == config_yaml


def record_rates(rates: list[float]):
    """A ``run`` patch that records the learning rate each update is made with."""
    def patch(trainer):
        update = trainer.steps.update

        def recording():
            rates.append(trainer.state.lr())
            return update()

        trainer.steps.update = recording
    return patch


def test_raising_max_epochs_trains_on_with_the_schedule_of_the_new_length(corpus, tmp_path):
    """As the README says to train on: rerun with a larger trainer.max_epochs. The restored
    schedule had ended (warmup_linear: rate 0); it is stretched to the new total, and epoch 3
    gets the rates of a fresh 3-epoch schedule."""
    from asrkit.training.schedulers import WarmupLinearScheduler, effective_warmup

    exp = tmp_path / "exp"
    status, first = run(corpus.config(exp, "trainer.max_epochs=2"))
    assert status == 0 and first.state.lr() == 0.0  # the end of a 2-epoch schedule
    done = first.step
    rates: list[float] = []
    status, trainer = run(corpus.config(exp, "trainer.max_epochs=3"), patch=record_rates(rates))
    assert status == 0 and trainer.epoch == 3 and len(rates) == trainer.step - done > 0
    total = 3 * trainer.updates_per_epoch
    assert trainer.total_steps == total == trainer.state.scheduler.total_steps
    fresh = WarmupLinearScheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))],
                                                  lr=0.002),
                                  warmup_steps=effective_warmup(5, total), total_steps=total)
    want = []
    for _ in range(trainer.step):
        want.append(fresh.get_last_lr()[0])
        fresh.optimizer.step()
        fresh.step()
    assert all(rate > 0 for rate in rates)
    assert rates == pytest.approx(want[done:], rel=1e-9)
    assert (f"learning-rate schedule: {2 * trainer.updates_per_epoch} updates in the "
            f"checkpoint's, now {total}") in (exp / "train.log").read_text()


def test_the_setup_log_gives_the_batches_of_epoch_1(corpus, tmp_path):
    # this budget packs 6 batches in the sampler's epoch 0 but 7 in epochs 1 to 3
    status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1",
                                        "data.sampler.max_frames=1400",
                                        "trainer.accum_grad=2"))
    assert status == 0
    log = (tmp_path / "exp" / "train.log").read_text()
    batches = int(re.findall(r"epoch 1  batch \d+/(\d+)", log)[-1])
    assert batches == 7
    assert f"epoch 1: {batches} batches per rank, 4 updates (accum_grad 2;" in log
    assert trainer.step == 4 and trainer.total_steps == 4
    if platform.libc_ver()[0] == "glibc":  # trainer.keep_freed_memory=true by default
        assert "host memory: freed blocks kept for reuse (glibc mallopt)" in log


def test_too_many_unloadable_utterances_stop_the_run_in_one_line(corpus, tmp_path, capsys):
    """More than data.max_fail_fraction of the training audio fails to load: exit status 1
    with one line naming the manifest, the count and the last failing utterance (no
    traceback)."""
    import json

    from asrkit.training.run import run_training

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    manifest = tmp_path / "train.jsonl"
    lines = corpus.train.read_text().splitlines()
    with manifest.open("w") as f:
        for i, line in enumerate(lines):
            utt = json.loads(line)
            utt["audio"] = str(broken if i % 4 else corpus.root / utt["audio"])  # 3 in 4 broken
            f.write(json.dumps(utt) + "\n")
    exp = tmp_path / "exp"
    status = run_training(corpus.config(exp, f"data.train={manifest}", "data.num_workers=1"))
    assert status == 1
    errors = [line for line in (exp / "train.log").read_text().splitlines() if " ERROR " in line]
    assert len(errors) == 1
    error = errors[0]
    assert f"data.train {manifest}: train.jsonl:" in error
    assert re.search(r"\d+ of 24 utterances failed to load", error)
    assert re.search(r"last: train-\d+: ", error) and "max_fail_fraction" in error
    assert "Traceback" not in capsys.readouterr().err


def test_a_transducer_alone_drops_utterances_without_an_encoder_frame(corpus, tmp_path):
    """Without a CTC head tokens may outnumber frames, but an utterance too short for one
    encoder frame has no transducer lattice (the loss would raise mid-epoch): filtered."""
    from asrkit.data.manifest import Utterance, read_manifest, write_manifest

    utts = read_manifest(corpus.train)
    short = Utterance("short", str(utts[0].audio), 0.05, utts[0].text, "s")  # 3 fbank frames
    write_manifest(tmp_path / "train.jsonl", [*utts, short])
    config = corpus.config(tmp_path / "exp", "model=transducer", "decoder=none",
                           "transducer=stateless", "transducer.prediction_dim=32",
                           "transducer.joint_dim=32", "data.filters.min_duration=0.0",
                           f"data.train={tmp_path / 'train.jsonl'}", "trainer.max_epochs=1")
    trainer = Trainer(config)
    trainer.setup()
    try:
        kept = [u.id for u in trainer.train_loader.dataset.utterances]
        assert "short" not in kept and len(kept) == len(utts)  # the long texts all stay
        assert trainer.train() == 0
    finally:
        trainer.cleanup()


def test_a_finished_run_given_a_changed_config_says_it_is_not_applied(corpus, tmp_path):
    """Rerunning a finished sweep with another fixed value trains nothing: the warning says
    the change is not applied, and config.yaml keeps what was trained."""
    assert run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1"))[0] == 0
    saved = (tmp_path / "exp" / "config.yaml").read_text()
    step = torch.load(tmp_path / "exp" / "checkpoints" / "last.pt", weights_only=True)["step"]
    status, trainer = run(corpus.config(tmp_path / "exp", "trainer.max_epochs=1",
                                        "model.lsm_weight=0.2"))
    assert status == 0 and trainer.step == step  # nothing trained further
    log = (tmp_path / "exp" / "train.log").read_text()
    assert ("config differs from the finished run's config.yaml in: model.lsm_weight; nothing "
            "is trained, so it is not applied (train into another exp_dir, or raise "
            "trainer.max_epochs to go on with it)") in log
    assert (tmp_path / "exp" / "config.yaml").read_text() == saved


class _FinalisedWithCtrlC:
    """Delivers Ctrl-C from ``__del__``, where Python prints and drops the exception (as
    when it lands while a DataLoader iterator shuts its workers down)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def __del__(self) -> None:
        self.trainer.stop._handle(signal.SIGINT, None)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # that drop
@pytest.mark.parametrize("during", ["train", "validate"])
def test_a_second_ctrl_c_dropped_by_a_finaliser_still_aborts(corpus, tmp_path, during):
    exp = tmp_path / "exp"
    trainer = Trainer(corpus.config(exp, "trainer.max_epochs=2"))
    trainer.setup()
    train_epoch, validate = trainer._train_epoch, trainer.validate

    def first_then_second_in_a_finaliser():
        trainer.stop._handle(signal.SIGINT, None)  # the first: finish the update, stop
        assert train_epoch() is None
        _FinalisedWithCtrlC(trainer)  # made and dropped at once: the second Ctrl-C

    def validating_when_both_come(images):
        result = validate(images)
        trainer.stop._handle(signal.SIGINT, None)
        _FinalisedWithCtrlC(trainer)  # as the dev loader's iterator shuts down
        return result

    if during == "train":
        trainer._train_epoch = first_then_second_in_a_finaliser
    else:
        trainer.validate = validating_when_both_come
    try:
        with pytest.raises(KeyboardInterrupt):
            trainer.train()
    finally:
        trainer.cleanup()
    assert not list((exp / "checkpoints").glob("*.pt"))  # aborted: no checkpoint written
