import pytest
import torch

from asrkit.models.encoders.conformer import ConformerEncoder


def tiny_encoder(**kwargs) -> ConformerEncoder:
    torch.manual_seed(0)
    options = {"input_dim": 20, "d_model": 16, "num_heads": 4, "ffn_dim": 32, "num_layers": 2,
               "kernel_size": 5}
    encoder = ConformerEncoder(**{**options, **kwargs})
    with torch.no_grad():  # non-trivial BatchNorm statistics and u/v biases
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
        for name, param in encoder.named_parameters():
            if "pos_bias" in name:
                param.normal_()
    return encoder.eval()


def test_shapes():
    encoder = tiny_encoder()
    enc, lens = encoder(torch.randn(3, 64, 20), torch.tensor([64, 40, 20]))
    assert enc.shape == (3, 15, 16) and encoder.output_dim == 16
    assert lens.tolist() == [15, 9, 4]


@pytest.mark.parametrize("conv_norm", ["batch_norm", "layer_norm"])
def test_padding_invariance(conv_norm, padded_batch, assert_padding_invariant):
    encoder = tiny_encoder(conv_norm=conv_norm)
    feats, lens = padded_batch([60, 41, 23, 11], 20)
    assert_padding_invariant(encoder, feats, lens)


def test_padding_invariance_without_subsampling(padded_batch, assert_padding_invariant):
    encoder = tiny_encoder(input_layer="linear")
    feats, lens = padded_batch([25, 12, 3], 20)
    assert_padding_invariant(encoder, feats, lens)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_wenet_block_parameter_count():
    # WeNet's AISHELL-1 Conformer encoder: 1,838,080 (conv2d 4x, 80 mel) + 12 x 2,635,520
    # (macaron FFNs, rel-pos MHSA, conv module with BatchNorm, 5 LayerNorms) + final norm.
    encoder = ConformerEncoder(input_dim=80)
    assert count(encoder.input_layer) == 1_838_080
    assert count(encoder.layers[0]) == 2_635_520
    assert count(encoder) == 1_838_080 + 12 * 2_635_520 + 512
