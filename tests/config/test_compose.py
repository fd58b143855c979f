"""Composing configs against their schemas: every bad key or value is one line that starts
with the full key; a misspelt key gets "did you mean", never Hydra's "+key" hint."""

from __future__ import annotations

import pytest

from asrkit.config import ConfigError, compose_config, compose_train_config


def error_of(*overrides: str, name: str = "train") -> str:
    with pytest.raises(ConfigError) as error:
        compose_config(name, list(overrides))
    message = str(error.value)
    assert "\n" not in message and "+trainer" not in message and "To append" not in message
    return message


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epoch=3", "trainer.max_epoch: unknown key (did you mean max_epochs?)"),
    ("+trainer.max_epoch=3", "trainer.max_epoch: unknown key (did you mean max_epochs?)"),
    ("+data.sampler.max_frame=10", "data.sampler.max_frame: unknown key (did you mean max_frames?)"),
    ("+tokenizer.dri=x", "tokenizer.dri: unknown key (did you mean dir?)"),
    ("encoder.kernel_sz=3", "encoder.kernel_sz: unknown key (did you mean kernel_size?)"),
    ("+foo=1", "foo: unknown key"),
    ("trainer.max_epochs=abc", "trainer.max_epochs: must be an integer, got 'abc'"),
    ("trainer.max_epochs=2.5", "trainer.max_epochs: must be an integer, got 2.5"),
    ("trainer.max_epochs=0", "trainer.max_epochs: must be > 0, got 0"),
    ("trainer.compile=maybe", "trainer.compile: must be a boolean (true/false), got 'maybe'"),
    ("trainer.precision=fp8", "trainer.precision: must be one of auto, fp32, bf16, fp16, got 'fp8'"),
    ("trainer.progress_bar=2", "trainer.progress_bar: must be one of auto, true, false, got 2"),
    ("trainer.seed=-1", "trainer.seed: must be >= 0, got -1"),
    ("trainer.grad_clip=-1", "trainer.grad_clip: must be > 0, got -1.0"),
    ("trainer.best_metric=dev_bleu", ("trainer.best_metric: must be one of dev_loss, dev_wer, "
                                      "dev_cer, dev_acc or dev_loss_<term>, got 'dev_bleu'")),
    ("trainer.mwer.nbest=0", "trainer.mwer.nbest: must be > 0, got 0"),
    ("data.sample_rate=0", "data.sample_rate: must be > 0, got 0"),
    ("data.features.num_mel_bins=abc", "data.features.num_mel_bins: must be an integer, got 'abc'"),
    ("data.specaug.freq_mask_width=-3", "data.specaug.freq_mask_width: must be >= 0, got -3"),
    ("data.speed_perturb=[0.9,-1]", "data.speed_perturb: has an item that must be > 0, got -1.0"),
    ("data.speed_perturb=1.1", "data.speed_perturb: must be a list such as [1.1], got '1.1'"),
    ("trainer.init_modules=encoder",
     "trainer.init_modules: must be a list such as [encoder], got 'encoder'"),
    ("data.max_fail_fraction=2", "data.max_fail_fraction: must be <= 1, got 2.0"),
    ("vocab_size=2", "vocab_size: must be >= 3, got 2"),
    ("encoder=transfomer", ("encoder: no option 'transfomer' in conf/encoder/ (did you mean "
                            "transformer?); options: conformer, contextnet, moe_conformer, "
                            "transformer")),
])
def test_bad_keys_and_values_name_the_full_key(override, expected):
    assert error_of(override) == expected


def test_cross_checks_within_a_section():
    assert error_of("data.filters.min_duration=5", "data.filters.max_duration=2") == (
        "data.filters.max_duration: 2.0 is below data.filters.min_duration=5.0")
    assert error_of("trainer.keep_last=0", "trainer.keep_best=0").startswith(
        "trainer.keep_last: keep_last and keep_best are both 0")
    assert error_of("trainer.compile=true", "trainer.activation_checkpointing=true").startswith(
        "trainer.activation_checkpointing: not together with trainer.compile=true")
    assert error_of("trainer.mwer.enabled=true", "trainer.mwer.beam=2").startswith(
        "trainer.mwer.beam: must be >= trainer.mwer.nbest (4), got 2")
    assert error_of("trainer.init_modules=[encoder]") == (
        "trainer.init_modules: only with trainer.init_from=<checkpoint>")
    assert error_of("trainer.init_from=a.pt", "trainer.init_modules=[]").startswith(
        "trainer.init_modules: an empty list loads nothing")


def test_an_unknown_preset_suggests_the_closest():
    message = error_of("+experiment=synth/conformr")
    assert message.startswith("+experiment: no option 'synth/conformr' in conf/experiment/synth/ "
                              "(did you mean conformer?)")


def test_a_preset_of_one_encoder_composes_with_another_chosen_on_the_command_line(caplog):
    """The README's sweep: +experiment=synth/conformer encoder=transformer. The preset's
    Conformer-only keys are left out (with a warning); the shared sizes stay."""
    config = compose_train_config(["+experiment=synth/conformer", "encoder=transformer"])
    assert config["encoder"]["_target_"].endswith("TransformerEncoder")
    assert "kernel_size" not in config["encoder"] and config["encoder"]["d_model"] == 144
    assert "left out encoder.kernel_size" in caplog.text
    # typed on the command line, a foreign key stays (and fails the builder's check later)
    config = compose_train_config(["+experiment=synth/conformer", "encoder=transformer",
                                   "encoder.kernel_size=15"])
    assert config["encoder"]["kernel_size"] == 15
    # without a group chosen on the command line nothing is left out
    assert compose_train_config(["+experiment=synth/conformer"])["encoder"]["kernel_size"] == 15


def test_good_values_compose_as_plain_containers():
    config = compose_train_config(["+experiment=synth/conformer", "trainer.max_epochs=3",
                                   "trainer.grad_clip=null", "data.speed_perturb=[]"])
    assert config["trainer"]["max_epochs"] == 3 and config["trainer"]["grad_clip"] is None
    assert config["data"]["speed_perturb"] == [] and isinstance(config["data"], dict)


def test_config_dirs_add_group_options(tmp_path):
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "mine.yaml").write_text(
        "_target_: asrkit.models.encoders.transformer.TransformerEncoder\ninput_dim: 80\n"
        "d_model: 8\nnum_heads: 2\nffn_dim: 16\n")
    config = compose_train_config(["encoder=mine"], config_dirs=[tmp_path])
    assert config["encoder"]["d_model"] == 8
    with pytest.raises(ConfigError, match="^--config-dir: .* is not a directory"):
        compose_train_config(["encoder=mine"], config_dirs=[tmp_path / "nope"])


@pytest.mark.parametrize("variant, changes", [
    ("synth/conformer_streaming", {"model": {"ctc_weight", "transducer_weight"}, "encoder": {
        "causal", "dynamic_chunk", "dynamic_left_chunks"}}),
    ("synth/conformer_ss", {"model": {"scheduled_sampling_prob",
                                      "scheduled_sampling_ramp_steps"}}),
])
def test_conformer_variants_change_only_what_they_are_for(variant, changes):
    """The variants repeat synth/conformer's encoder section (Hydra cannot extend a preset
    of the same group): they must stay equal to it except for the keys they are about."""
    base = compose_train_config(["+experiment=synth/conformer"])
    other = compose_train_config([f"+experiment={variant}"])
    for section in ("encoder", "decoder", "model", "optim", "scheduler", "trainer", "data"):
        differing = {key for key in set(base[section]) | set(other[section])
                     if base[section].get(key) != other[section].get(key)}
        assert differing <= changes.get(section, set()), (section, differing)
