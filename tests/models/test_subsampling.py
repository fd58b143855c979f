import pytest
import torch

from asrkit.models.subsampling import (
    Conv2dSubsampling,
    LinearInput,
    build_input_layer,
    conv_output_length,
)


@pytest.mark.parametrize("name,factor", [("conv2d4", 4), ("conv2d6", 6), ("conv2d8", 8),
                                         ("linear", 1)])
def test_output_lengths_match_output_shape(name, factor):
    layer = build_input_layer(name, input_dim=20, d_model=8).eval()
    assert layer.factor == factor
    for length in (15, 16, 17, 30, 41):
        out, lens = layer(torch.randn(1, length, 20), torch.tensor([length]))
        assert out.shape == (1, int(lens[0]), 8)
        # the usual "about T / factor" frames
        assert abs(int(lens[0]) - length / factor) < 2 if factor > 1 else int(lens[0]) == length


@pytest.mark.parametrize("factor", [4, 6, 8])
def test_conv_subsampling_is_padding_invariant(factor, padded_batch, assert_padding_invariant):
    torch.manual_seed(0)
    layer = Conv2dSubsampling(input_dim=20, d_model=8, factor=factor).eval()
    feats, lens = padded_batch([40, 27, 19], 20)
    assert_padding_invariant(layer, feats, lens)


def test_linear_input_shape():
    out, lens = LinearInput(10, 4)(torch.randn(2, 7, 10), torch.tensor([7, 3]))
    assert out.shape == (2, 7, 4) and lens.tolist() == [7, 3]


def test_unknown_input_layer_names_it():
    with pytest.raises(ValueError, match="conv2d5"):
        build_input_layer("conv2d5", 80, 256)


@pytest.mark.parametrize("factor", [4, 6, 8])
def test_narrow_conv_stack(factor):
    """input_channels: the conv stack's width, independent of d_model (icefall-style)."""
    layer = build_input_layer(f"conv2d{factor}", 40, 144, channels=32)
    convs = [m for m in layer.conv if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32] * len(convs)
    assert layer.out.in_features == 32 * conv_output_length(40, layer.layers)
    y, lens = layer(torch.randn(2, 97, 40), torch.tensor([97, 60]))
    assert y.shape == (2, int(lens[0]), 144)
    assert lens.tolist() == [conv_output_length(97, layer.layers), conv_output_length(60, layer.layers)]
    wide = build_input_layer(f"conv2d{factor}", 40, 144)
    assert sum(p.numel() for p in layer.parameters()) < sum(p.numel() for p in wide.parameters())
