"""`asrkit train` as a user runs it: config errors fail fast naming the key; signals write
a checkpoint and exit cleanly (subprocesses, like a terminal's Ctrl-C and a scheduler's
SIGTERM)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asrkit.bin.train import main


@pytest.mark.parametrize("override, key", [
    ("trainer.max_epoch=3", "trainer.max_epoch"),        # Hydra: not in the config
    ("+trainer.max_epoch=3", "trainer.max_epoch"),       # added with +: our schema check
    ("+data.sampler.max_frame=100", "data.sampler.max_frame"),
    ("+encoder.num_layer=2", "encoder.num_layer"),
    ("optim.lr=-0.001", "optim.lr"),
    ("trainer.precision=fp8", "trainer.precision"),
    ("trainer.accum_grad=0", "trainer.accum_grad"),
    ("trainer.max_epochs=two", "trainer.max_epochs"),
    ("data.train=/nonexistent/train.jsonl", "data.train"),
    ("trainer.best_metric=dev_bleu", "trainer.best_metric"),
    ("data.features.num_mel_bins=40", "data.cmvn"),      # the stats have 80 bins
    ("trainer.mwer.enabled=true trainer.mwer.nbest=0", "trainer.mwer.nbest"),
    ("trainer.compile=true trainer.activation_checkpointing=true",
     "trainer.activation_checkpointing"),
    # the optimiser and the schedule are built in the check (against a meta-device model)
    ("optim.betas=[0.9,1.5]", "optim.betas"),
    ("scheduler.min_lr_ratio=2", "scheduler.min_lr_ratio"),
    ("trainer.seed=-1", "trainer.seed"),
    ("encoder.d_model=0", "encoder.d_model"),
    ("decoder.num_heads=3", "decoder.num_heads"),
    ("encoder.dropout=1.5", "encoder.dropout"),
    ("data.specaug.freq_mask_width=-3", "data.specaug.freq_mask_width"),
    ("data.filters.min_duration=-1", "data.filters.min_duration"),
    ("hydra.run.dir=/tmp/elsewhere", "hydra.run.dir"),  # exp_dir is the run directory
    # every section: a value of the wrong type or sign, named with its full key
    ("encoder.dropout=abc", "encoder.dropout: must be a number, got 'abc'"),
    ("encoder.num_layers=2.5", "encoder.num_layers: must be an integer, got 2.5"),
    ("encoder.num_layers=-2", "encoder.num_layers: must be > 0, got -2"),
    ("decoder.ffn_dim=-8", "decoder.ffn_dim: must be > 0, got -8"),
    ("model.ctc_weight=2", "model.ctc_weight: must be <= 1, got 2"),
    ("model.inter_decoder_layers=[0.5] model.inter_decoder_weight=-1",
     "model.inter_decoder_weight: must be >= 0, got -1"),
    ("optim.lr=fast", "optim.lr: must be a number, got 'fast'"),
    ("scheduler.warmup_steps=-5", "scheduler.warmup_steps: must be >= 0, got -5"),
    ("data.sample_rate=0", "data.sample_rate: must be > 0, got 0"),
    ("trainer.max_epochs=abc", "trainer.max_epochs: must be an integer, got 'abc'"),
    ("+tokenizer.dri=x", "tokenizer.dri: unknown key (did you mean dir?)"),
    ("vocab_size=2", "vocab_size: must be >= 3, got 2"),
    ("exp_dir=", "exp_dir: must name a directory, got an empty string"),
    ("data.features.frame_shift=0.05",
     "data.features.frame_shift: 0.05 ms is less than one sample at 16000 Hz"),
    # a builder's own check, named with the full key
    ("encoder.input_layer=conv2d5", "encoder.input_layer: unknown input layer 'conv2d5'"),
    ("decoder.activation=tanh", "decoder.activation: unknown activation 'tanh'"),
    # a key of a section the model does not have: why it fails, and the + that keeps it
    ("transducer.joint_dim=8",
     ("transducer.joint_dim: this model has no transducer, so the key would do nothing; to "
      "keep it in a shared override list write +transducer.joint_dim=8")),
    # a builder's parameter the chosen YAML does not list: how to add it, not "did you mean"
    ("model=ctc model.interctc_layers=[0.5]",
     ("model.interctc_layers: a valid key that the chosen config does not list; add it with "
      "+model.interctc_layers=[0.5]")),
    ("encoder=conformer encoder.kernel_size=4",
     "encoder.kernel_size: must be odd (symmetric context), got 4"),
    ("encoder=conformer encoder.conv_norm=foo", "encoder.conv_norm: unknown conv norm 'foo'"),
    ("encoder=moe_conformer encoder.top_k=9",
     "encoder.top_k: must be in 1..num_experts (8), got 9"),
    ("encoder=moe_conformer encoder.moe_layers=[1,1]",
     "encoder.moe_layers: [1, 1] names one layer twice"),
    ("model.interctc_weight=0.5", "model.interctc_weight: > 0 but interctc_layers is empty"),
])
def test_config_errors_fail_fast_naming_the_key(corpus, tmp_path, capsys, override, key):
    start = time.monotonic()
    status = main(corpus.overrides(tmp_path / "exp", *override.split()))
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("asrkit train: ") and key in err and err.count("\n") == 1
    assert time.monotonic() - start < 5
    assert not (tmp_path / "exp").exists()  # nothing was started


def test_a_setup_that_fails_late_leaves_no_new_exp_dir_and_an_old_one_as_it_was(
        corpus, tmp_path, capsys):
    """Every dev utterance longer than the batch budget is found once the loaders are built,
    after exp_dir, train.log and the tokenizer copy were made: a new exp_dir goes again."""
    exp = tmp_path / "exp"
    assert main(corpus.overrides(exp, "data.sampler.max_frames=100")) == 2
    err = capsys.readouterr().err
    assert err.endswith("gives no batch (no utterances, or all filtered out)\n")
    assert "dev.jsonl: 2 utterance(s) longer than data.sampler.max_frames=100 are left out" in err
    assert not exp.exists()
    exp.mkdir()
    (exp / "notes.txt").write_text("mine\n")
    assert main(corpus.overrides(exp, "data.sampler.max_frames=100")) == 2
    assert (exp / "notes.txt").read_text() == "mine\n" and (exp / "train.log").is_file()
    # the parents it made go too
    assert main(corpus.overrides(tmp_path / "a" / "b", "data.sampler.max_frames=100")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
    # but not a parent in which another run has meanwhile started its experiment
    from asrkit.training.trainer import Trainer

    build_loaders = Trainer._build_loaders

    def another_run_starts(self, manifests):
        (tmp_path / "sweep" / "b").mkdir()
        (tmp_path / "sweep" / "b" / "epoch_1.pt").write_text("theirs")
        build_loaders(self, manifests)

    Trainer._build_loaders = another_run_starts
    try:
        assert main(corpus.overrides(tmp_path / "sweep" / "a",
                                     "data.sampler.max_frames=100")) == 2
    finally:
        Trainer._build_loaders = build_loaders
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["b"]


def test_a_run_that_finds_exp_dir_locked_leaves_the_other_runs_directory(corpus, tmp_path,
                                                                         monkeypatch, capsys):
    """Made by a run that started first (between this one's look and its lock)."""
    from asrkit.training import trainer as trainer_module

    exp = tmp_path / "exp"

    def held(exp_dir):
        exp_dir.mkdir()
        (exp_dir / "train.log").write_text("the other run's\n")
        raise ValueError(f"{exp_dir}: another asrkit train is using it")

    monkeypatch.setattr(trainer_module.TrainLock, "acquire", staticmethod(held))
    assert main(corpus.overrides(exp)) == 2
    assert "another asrkit train is using it" in capsys.readouterr().err
    assert (exp / "train.log").read_text() == "the other run's\n"


def test_an_exp_dir_that_is_a_file_is_named(corpus, tmp_path, capsys):
    (tmp_path / "afile").write_text("kept")
    assert main(corpus.overrides(tmp_path / "afile")) == 2
    assert capsys.readouterr().err == (f"asrkit train: exp_dir: {tmp_path / 'afile'} is a "
                                       f"file, not a directory\n")
    assert (tmp_path / "afile").read_text() == "kept"
    assert main(corpus.overrides(tmp_path / "afile" / "sub")) == 2
    assert capsys.readouterr().err == (f"asrkit train: exp_dir: {tmp_path / 'afile' / 'sub'} "
                                       f"would be inside {tmp_path / 'afile'}, which is a file\n")

@pytest.mark.parametrize("split", ["train", "dev"])
def test_a_malformed_manifest_is_named_before_exp_dir_is_touched(corpus, tmp_path, capsys,
                                                                  split):
    lines = Path(getattr(corpus, split)).read_text().splitlines()
    bad = tmp_path / f"{split}.jsonl"
    bad.write_text("\n".join([lines[0], lines[1][:-5], *lines[2:]]) + "\n")  # line 2 cut short
    assert main(corpus.overrides(tmp_path / "exp", f"data.{split}={bad}")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit train: {bad}:2: not valid JSON") and err.count("\n") == 1
    assert not (tmp_path / "exp").exists()  # no train.log, lock or tokenizer copy left behind


def test_a_failure_before_the_log_exists_names_the_rank_under_ddp(corpus, tmp_path, capsys,
                                                                   monkeypatch):
    from asrkit.training import distributed
    from asrkit.training.run import run_training

    monkeypatch.setattr(distributed, "init_distributed",  # rank 1 of 2, no process group
                        lambda device: distributed.DistributedContext(rank=1, world_size=2))
    bad = tmp_path / "train.jsonl"
    bad.write_text("{\n")
    assert run_training(corpus.config(tmp_path / "exp", f"data.train={bad}")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"[rank 1] asrkit train: {bad}:1: not valid JSON")
    assert err.count("\n") == 1 and not (tmp_path / "exp").exists()



@pytest.mark.parametrize("typo", ["trainer.max_epoch=3", "+trainer.max_epoch=3"])
def test_typo_suggests_the_right_key_not_adding_it(corpus, tmp_path, capsys, typo):
    assert main(corpus.overrides(tmp_path / "exp", typo)) == 2
    err = capsys.readouterr().err
    assert err == "asrkit train: trainer.max_epoch: unknown key (did you mean max_epochs?)\n"


def test_impossible_model_shape_fails_before_training(corpus, tmp_path, capsys):
    assert main(corpus.overrides(tmp_path / "exp", "encoder.num_heads=3")) == 2
    assert "not divisible" in capsys.readouterr().err


def _train_until_update(args: list[str], log: Path, update: int) -> subprocess.Popen:
    """Start `python -m asrkit train` in its own session; return once `update` is logged."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "asrkit", "train", *args], env=env,
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and f"update {update} " in log.read_text():
            return process
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no update {update} logged: {process.communicate()[1][-2000:]}")


@pytest.mark.long(15)
def test_signals_write_a_checkpoint_and_exit_cleanly(corpus, tmp_path):
    exp = tmp_path / "exp"
    # ~24 one-utterance updates per epoch, each long enough (a wider encoder) that the
    # signal lands mid-epoch even on a fast machine
    args = corpus.overrides(exp, "trainer.max_epochs=100", "data.num_workers=1",
                            "trainer.tensorboard=false", "data.sampler.max_frames=500",
                            "encoder.d_model=256", "encoder.ffn_dim=1024",
                            "encoder.num_heads=4", "encoder.num_layers=2")
    # Ctrl-C in a terminal: SIGINT to the whole process group, DataLoader workers included
    process = _train_until_update(args, exp / "train.log", 2)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    first = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert first["step"] >= 2 and not first["epoch_complete"]
    # the same command resumes; SIGTERM to the main process alone (a scheduler's notice)
    process = _train_until_update(args, exp / "train.log", first["step"] + 2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-2000:]
    second = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert second["step"] >= first["step"] + 2
    text = (exp / "train.log").read_text()
    step_file = exp / "checkpoints" / f"step_{first['step']}.pt"
    assert f"resumed from {step_file}" in text
    assert text.count("stopped by signal") == 2


def test_expand_sweep_is_hydras_basic_sweeper():
    from asrkit.training.sweep import expand_sweep, job_dir_name, swept_keys

    overrides = ["encoder=transformer,conformer", "optim.lr=0.001,0.002", "trainer.seed=1"]
    jobs = expand_sweep(overrides)
    assert jobs == [
        ["encoder=transformer", "optim.lr=0.001", "trainer.seed=1"],
        ["encoder=transformer", "optim.lr=0.002", "trainer.seed=1"],
        ["encoder=conformer", "optim.lr=0.001", "trainer.seed=1"],
        ["encoder=conformer", "optim.lr=0.002", "trainer.seed=1"],
    ]
    assert swept_keys(overrides) == ["encoder", "optim.lr"]
    assert job_dir_name(3, jobs[3], ["encoder", "optim.lr"]) == "3_encoder-conformer+optim.lr-0.002"
    assert len(expand_sweep(["trainer.seed=range(0,3)"])) == 3
    plus = ["+experiment=synth/transformer,synth/conformer", "trainer.seed=1"]
    assert swept_keys(plus) == ["experiment"]
    assert [job_dir_name(n, job, swept_keys(plus)) for n, job in enumerate(expand_sweep(plus))] \
        == ["0_experiment-synth-transformer", "1_experiment-synth-conformer"]


def test_multirun_trains_each_combination_into_its_own_directory(corpus, tmp_path, capsys):
    exp = tmp_path / "sweep"
    status = main(["-m", *corpus.overrides(exp, "trainer.max_epochs=1", "trainer.tensorboard=false",
                                           "optim.lr=0.001,0.004")])
    assert status == 0
    assert sorted(p.name for p in exp.iterdir()) == ["0_optim.lr-0.001", "1_optim.lr-0.004"]
    for run, lr in (("0_optim.lr-0.001", 0.001), ("1_optim.lr-0.004", 0.004)):
        state = torch.load(exp / run / "checkpoints" / "epoch_1.pt", weights_only=True)
        assert state["config"]["optim"]["lr"] == lr
        assert state["config"]["exp_dir"] == str(exp / run)
    assert "run 2/2 into" in capsys.readouterr().err
    # a run directory passes back to asrkit decode as it is, unquoted
    from asrkit.bin.decode import main as decode

    assert decode([f"exp_dir={exp}/1_optim.lr-0.004", "checkpoint=checkpoints/epoch_1.pt",
                   "methods=[ctc_greedy]", f"test_sets=[{corpus.dev}]"]) == 0
    assert list((exp / "1_optim.lr-0.004" / "decode" / "epoch_1" / "dev").iterdir())


def test_the_readmes_sweep_over_encoders_composes_and_checks(corpus, tmp_path, caplog):
    """`asrkit train -m encoder=transformer,conformer,moe_conformer +experiment=synth/conformer`:
    the preset's Conformer-only keys do not leak into the Transformer."""
    from asrkit.training.sweep import plan_jobs

    overrides = [o for o in corpus.overrides(tmp_path / "sweep")
                 if not o.startswith(("+experiment", "encoder."))]
    jobs = plan_jobs(["encoder=transformer,conformer,moe_conformer",
                      "+experiment=synth/conformer", *overrides], multirun=True)
    encoders = [config["encoder"]["_target_"].rsplit(".", 1)[1] for _, config in jobs]
    assert encoders == ["TransformerEncoder", "ConformerEncoder", "MoEConformerEncoder"]
    assert [config["exp_dir"].rsplit("/", 1)[1] for _, config in jobs] == [
        "0_encoder-transformer", "1_encoder-conformer", "2_encoder-moe_conformer"]
    assert "kernel_size" not in jobs[0][1]["encoder"] and jobs[1][1]["encoder"]["kernel_size"] == 15
    assert not (tmp_path / "sweep").exists()


def test_long_swept_values_are_cut_with_a_hash_and_an_empty_sweep_is_refused(
        corpus, tmp_path, capsys):
    from asrkit.training.sweep import job_dir_name, plan_jobs

    long_a, long_b = "/data/" + "a" * 300 + "/train.jsonl", "/data/" + "a" * 300 + "/dev.jsonl"
    names = [job_dir_name(n, [f"data.train={v}"], ["data.train"])
             for n, v in enumerate((long_a, long_b))]
    assert names[0] != names[1] and all(len(n.encode()) <= 60 for n in names)
    assert names[0].startswith("0_data.train-") and names[0].endswith("aaaa-train.jsonl")
    fits = "/corpora/librispeech/manifests/train-clean-100.jsonl"  # a name as it always was
    assert job_dir_name(0, [f"data.train={fits}"], ["data.train"]) == \
        "0_data.train--corpora-librispeech-manifests-train-clean-100.jsonl"
    many = [f"k{i}=" + "v" * 40 for i in range(10)]  # ten short values: too long together
    name = job_dir_name(7, many, [f"k{i}" for i in range(10)])
    assert len(name) == 10 and name.startswith("7_")
    assert main(["-m", *corpus.overrides(tmp_path / "sweep", "trainer.seed=range(3,3)",
                                         "optim.lr=0.001,0.002")]) == 2
    assert capsys.readouterr().err == ("asrkit train: -m: the sweep over trainer.seed, optim.lr "
                                       "has no run (an empty range or list of values)\n")
    assert not (tmp_path / "sweep").exists()
    assert main(["-m", "encoder=glob(trans*)", *corpus.overrides(tmp_path / "sweep")]) == 2
    assert capsys.readouterr().err == ("asrkit train: encoder=glob(trans*): glob() sweeps are "
                                       "not supported; list the options (e.g. "
                                       "encoder=transformer,conformer)\n")
    deep = tmp_path / ("d" * 120) / ("e" * 120)  # a sweep over two long paths
    deep.mkdir(parents=True)
    shutil.copy(corpus.cmvn, deep / "cmvn.json")
    jobs = plan_jobs([*corpus.overrides(tmp_path / "s2"),
                      f"data.cmvn={corpus.cmvn},{deep / 'cmvn.json'}"], multirun=True)
    dirs = [Path(config["exp_dir"]) for _, config in jobs]
    assert len(set(dirs)) == 2 and all(len(d.name.encode()) <= 255 for d in dirs)
    assert dirs[1].name.endswith("eeee-cmvn.json") and len(dirs[1].name) <= 60  # cut


def test_a_stopped_sweep_says_which_runs_did_not_start(corpus, tmp_path, capsys, monkeypatch):
    import asrkit.training.run as run_module
    from asrkit.training.sweep import plan_jobs, run_jobs

    jobs = plan_jobs(corpus.overrides(tmp_path / "sweep", "trainer.seed=1,2,3"), multirun=True)
    statuses = iter([0, 130])
    monkeypatch.setattr(run_module, "run_training", lambda config: next(statuses))
    assert run_jobs(jobs, multirun=True) == 130
    err = capsys.readouterr().err.splitlines()
    assert "failed" not in " ".join(err)
    assert err[-1] == (f"asrkit train: the sweep was stopped during run 2/3 ({tmp_path}/sweep/"
                       f"1_trainer.seed-2); 1 later run(s) did not start (run the same command "
                       f"again to resume)")


def test_multirun_checks_every_run_before_the_first_starts(corpus, tmp_path, capsys):
    exp = tmp_path / "sweep"
    assert main(["-m", *corpus.overrides(exp, "optim.lr=0.001,-1")]) == 2
    assert "optim.lr: must be > 0" in capsys.readouterr().err
    assert not exp.exists()
    assert main(corpus.overrides(exp, "optim.lr=0.001,0.002")) == 2  # a sweep needs -m
    assert not exp.exists()


def test_the_config_check_leaves_no_tensor_on_the_meta_device(tmp_path):
    """The check builds the model on the meta device; a module imported for the first time
    inside it (torchaudio's Kaldi features make a tensor at import) must not be left with
    meta tensors, or every utterance fails to load ("Cannot copy out of meta tensor")."""
    code = ("from asrkit.config import compose_train_config\n"
            "from asrkit.training.preflight import check_train_config\n"
            "config = compose_train_config(['+experiment=synth/conformer_transducer', "
            "'vocab_size=100'])\n"
            "check_train_config(config, check_disk=False)\n"
            "import torch, torchaudio.compliance.kaldi as kaldi\n"
            "from asrkit.data.features import FbankExtractor\n"
            "assert kaldi.EPSILON.device.type == 'cpu', kaldi.EPSILON.device\n"
            "print(FbankExtractor()(torch.zeros(1600)).shape)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "torch.Size([8, 80])"


def test_overrides_of_a_section_the_model_lacks_are_named(corpus, tmp_path, capsys,
                                                          monkeypatch):
    """model=ctc drops the decoder: a decoder.* override then changes nothing, and the
    command says so (one warning line each); the model is built all the same."""
    from asrkit.training.sweep import plan_jobs

    monkeypatch.delenv("RANK", raising=False)
    tiny = [o for o in corpus.overrides(tmp_path / "exp") if not o.startswith("decoder.")]
    jobs = plan_jobs([*tiny, "model=ctc", "decoder.num_layers=4",
                      "+transducer.extra=1", "transducer=none", "encoder.num_layers=2"],
                     multirun=False)
    assert jobs[0][1]["encoder"]["num_layers"] == 2
    assert capsys.readouterr().err.splitlines() == [
        ("asrkit train: warning: decoder.num_layers=4: ignored, this model has no decoder "
         "(model=ctc or decoder=none)"),
        ("asrkit train: warning: +transducer.extra=1: ignored, this model has no transducer "
         "(transducer=none)")]
    plan_jobs([*tiny, "decoder.num_layers=4"], multirun=False)
    assert capsys.readouterr().err == ""  # a model with a decoder: nothing to say
    monkeypatch.setenv("RANK", "1")  # a DDP rank other than the first says nothing either
    plan_jobs([*tiny, "model=ctc", "decoder.num_layers=4"], multirun=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("env", [{}, {"RANK": "1"}, {"RANK": "0", "ASRKIT_LAUNCHER_PID": "7"}])
def test_config_notes_come_from_the_launching_process_only(corpus, tmp_path, caplog,
                                                            monkeypatch, env):
    """trainer.devices=2: the launcher composes the config, then each rank again; the
    preset's left-out keys are reported by the launcher (or torchrun's rank 0) alone."""
    from asrkit.training.sweep import plan_jobs

    for name in ("RANK", "ASRKIT_LAUNCHER_PID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    overrides = [o for o in corpus.overrides(tmp_path / "exp")
                 if not o.startswith(("encoder", "+experiment"))]
    with caplog.at_level(logging.WARNING):
        jobs = plan_jobs([*overrides, "+experiment=synth/conformer", "encoder=transformer"],
                         multirun=False)
    assert "kernel_size" not in jobs[0][1]["encoder"]
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(notes) == (0 if env else 1)
    assert logging.getLogger("asrkit.config").level == logging.NOTSET  # put back
