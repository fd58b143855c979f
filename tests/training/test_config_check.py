import pytest

from asrkit.config import compose_train_config
from asrkit.training.config_check import TrainConfigError, check_train_config


def check(*overrides: str) -> int:
    """check_train_config of a synth preset (synth/conformer unless one is given)."""
    if not any(o.startswith("+experiment=") for o in overrides):
        overrides = ("+experiment=synth/conformer", *overrides)
    config = compose_train_config([*overrides, "vocab_size=60"])
    return check_train_config(config, check_files=False)


@pytest.mark.parametrize("overrides", [
    [],
    ["encoder.input_layer=conv2d6", "data.filters.subsampling=6"],
    ["encoder.input_layer=conv2d8", "data.filters.subsampling=8"],
    ["encoder.input_layer=linear", "data.filters.subsampling=1"],
    ["+experiment=synth/transformer", "encoder.input_layer=conv2d8",
     "data.filters.subsampling=8"],
    ["+experiment=synth/contextnet"],  # the preset sets 8 for ContextNet's three strides
])
def test_filter_subsampling_matching_the_encoder_passes(overrides):
    assert check(*overrides) == 60


@pytest.mark.parametrize("overrides,factor,source", [
    (["encoder.input_layer=conv2d8"], 8, "encoder.input_layer=conv2d8"),
    (["encoder.input_layer=conv2d6"], 6, "encoder.input_layer=conv2d6"),
    (["encoder.input_layer=linear"], 1, "encoder.input_layer=linear"),
    (["encoder=moe_conformer", "encoder.input_layer=conv2d8"], 8, "conv2d8"),
    (["+experiment=synth/contextnet", "data.filters.subsampling=4"], 8, "ContextNetEncoder"),
])
def test_filter_subsampling_differing_from_the_encoder_is_a_one_line_error(overrides, factor,
                                                                           source):
    # with 4 for an 8x encoder, transcripts too long for CTC pass the filter (zero loss)
    with pytest.raises(TrainConfigError) as error:
        check(*overrides)
    message = str(error.value)
    assert message.startswith("data.filters.subsampling: ") and "\n" not in message
    assert f"data.filters.subsampling={factor}" in message and source in message
