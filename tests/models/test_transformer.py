import pytest
import torch

from asrkit.models.encoders.transformer import TransformerEncoder


def tiny_encoder(**kwargs) -> TransformerEncoder:
    torch.manual_seed(0)
    options = {"input_dim": 20, "d_model": 16, "num_heads": 4, "ffn_dim": 32, "num_layers": 2}
    return TransformerEncoder(**{**options, **kwargs}).eval()


@pytest.mark.parametrize("input_layer,factor", [("conv2d4", 4), ("conv2d6", 6), ("linear", 1)])
def test_shapes(input_layer, factor):
    encoder = tiny_encoder(input_layer=input_layer)
    enc, lens = encoder(torch.randn(2, 50, 20), torch.tensor([50, 30]))
    assert enc.shape[0] == 2 and enc.shape[2] == encoder.output_dim == 16
    assert enc.shape[1] == int(lens[0]) and int(lens[1]) < int(lens[0])
    assert abs(enc.shape[1] - 50 / factor) < 2


@pytest.mark.parametrize("input_layer", ["conv2d4", "linear"])
def test_padding_invariance(input_layer, padded_batch, assert_padding_invariant):
    encoder = tiny_encoder(input_layer=input_layer)
    feats, lens = padded_batch([48, 33, 17], 20)
    assert_padding_invariant(encoder, feats, lens)
