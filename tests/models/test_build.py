import pytest

from asrkit.models.build import ModelConfigError, build_model, check_model_config

ENCODER = {"_target_": "asrkit.models.encoders.transformer.TransformerEncoder",
           "input_dim": 20, "d_model": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 1}
DECODER = {"_target_": "asrkit.models.decoders.transformer.TransformerDecoder",
           "d_model": 8, "num_heads": 2, "ffn_dim": 16, "num_layers": 1}
MODEL = {"_target_": "asrkit.models.asr_model.ASRModel", "ctc_weight": 0.3}


def config(**sections):
    return {"encoder": dict(ENCODER), "decoder": dict(DECODER), "model": dict(MODEL),
            "vocab_size": 10, **sections}


def test_builds_and_fills_in_cross_section_values():
    model = build_model(config())
    assert model.vocab_size == 10 and model.ctc_weight == 0.3
    assert model.decoder.output_layer.out_features == 10
    assert model.decoder.layers[0].src_attn.linear_k.in_features == 16  # encoder_dim
    assert build_model(config(), vocab_size=7).ctc.linear.out_features == 7


@pytest.mark.parametrize("decoder", [None, {}])
def test_no_decoder_gives_ctc_only(decoder):
    model = build_model(config(decoder=decoder))
    assert model.decoder is None and model.ctc_weight == 1.0


@pytest.mark.parametrize("section,key,message", [
    ("encoder", "num_blokcs", "encoder.num_blokcs: not an option"),
    ("decoder", "vocab_size", "decoder.vocab_size: set by the model builder"),
    ("model", "ctc_wieght", "model.ctc_wieght: not an option"),
])
def test_bad_key_fails_at_once_naming_it(section, key, message):
    cfg = config()
    cfg[section][key] = 1
    with pytest.raises(ModelConfigError, match=message):
        check_model_config(cfg)


def test_missing_required_key_and_bad_target_are_named():
    cfg = config()
    del cfg["encoder"]["input_dim"]
    with pytest.raises(ModelConfigError, match=r"encoder\.input_dim: missing"):
        build_model(cfg)
    cfg = config()
    cfg["decoder"]["_target_"] = "asrkit.models.decoders.nope.Decoder"
    with pytest.raises(ModelConfigError, match=r"decoder\._target_"):
        build_model(cfg)


def test_vocab_size_is_required():
    with pytest.raises(ModelConfigError, match="vocab_size"):
        build_model(config(vocab_size=None))


def test_none_marker_ignores_the_other_decoder_keys():
    # what decoder=none gives under a preset that sets decoder keys of its own
    model = build_model(config(decoder={"_none_": True, "d_model": 8, "num_layers": 6}))
    assert model.decoder is None and model.ctc_weight == 1.0


def test_decoder_keys_without_target_or_marker_name_the_way_out():
    with pytest.raises(ModelConfigError, match="decoder: no _target_.*decoder=none"):
        check_model_config(config(decoder={"d_model": 8}))


@pytest.mark.parametrize("overrides", [
    ["+experiment=synth/conformer", "decoder=none"],
    ["+experiment=synth/conformer", "model=ctc"],
    ["+experiment=aishell/conformer", "model=ctc"],
    ["+experiment=aishell/conformer", "decoder=none"],
    ["+experiment=librispeech/conformer_s", "decoder=none"],
])
def test_ctc_only_on_the_command_line_wins_over_any_preset(overrides):
    # the presets set decoder keys (and ctc_weight 0.3 or 0.5) that merge into decoder=none
    import torch

    from asrkit.config import compose_train_config
    from asrkit.models.param_count import count_parameters

    cfg = compose_train_config([*overrides, "vocab_size=100"])
    with torch.device("meta"):
        model = build_model(cfg)
    assert model.decoder is None and model.ctc_weight == 1.0
    counts = count_parameters(model)
    assert counts["decoder"] == 0 and counts["encoder"] > 0
    assert counts["total"] == counts["encoder"] + counts["ctc"]
