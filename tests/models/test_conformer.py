import math

import pytest
import torch
import torch.nn.functional as F

from asrkit.models.encoders.conformer import ConformerEncoder
from asrkit.models.mask import padding_mask
from asrkit.models.rel_attention import RelPositionMultiHeadAttention


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


def randomized_encoder(randomize_norms, **kwargs) -> ConformerEncoder:
    """tiny_encoder with every LayerNorm and BatchNorm off its identity init."""
    return randomize_norms(tiny_encoder(**kwargs), seed=1)


def reference_block(layer, x: torch.Tensor, pos_emb: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """Gulati et al. 2020, eq. 1, from the layer's own submodules: macaron half-step FFN,
    rel-pos MHSA, conv module, half-step FFN (each pre-LayerNorm, residual), final LayerNorm."""
    x = x + 0.5 * layer.feed_forward_macaron(layer.norm_ff_macaron(x))
    x = x + layer.self_attn(layer.norm_mha(x), pos_emb, mask.unsqueeze(1))
    x = x + layer.conv_module(layer.norm_conv(x), mask)
    x = x + 0.5 * layer.feed_forward(layer.norm_ff(x))
    return layer.norm_final(x)


@pytest.mark.parametrize("conv_norm", ["batch_norm", "layer_norm"])
def test_block_is_the_papers_macaron_composition(conv_norm, randomize_norms):
    encoder = randomized_encoder(randomize_norms, conv_norm=conv_norm)
    layer = encoder.layers[0]
    assert isinstance(layer.self_attn, RelPositionMultiHeadAttention)
    torch.manual_seed(1)
    x = torch.randn(2, 9, 16)  # (batch, time, d_model)
    mask = padding_mask(torch.tensor([9, 6]), 9)
    _, pos_emb = encoder.pos_enc(x)  # (2T-1, d_model)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, pos_emb, mask), reference_block(layer, x, pos_emb, mask))


def test_encoder_is_input_layer_rel_positions_blocks_final_norm(randomize_norms):
    encoder = randomized_encoder(randomize_norms)
    torch.manual_seed(2)
    feats, feat_lens = torch.randn(2, 48, 20), torch.tensor([48, 33])
    with torch.no_grad():
        x, lens = encoder.input_layer(feats, feat_lens)  # (batch, T', d_model)
        x, pos_emb = x * math.sqrt(16), encoder.pos_enc(x)[1]  # x only scaled by sqrt(d)
        mask = padding_mask(lens, x.size(1))
        for layer in encoder.layers:
            x = reference_block(layer, x, pos_emb, mask)
        expected = F.layer_norm(x, (16,), encoder.final_norm.weight, encoder.final_norm.bias)
        enc, enc_lens = encoder(feats, feat_lens)
    assert torch.equal(enc_lens, lens)
    torch.testing.assert_close(enc, expected)


@pytest.mark.parametrize("activation,function", [("swish", F.silu), ("relu", F.relu)])
def test_activation_reaches_both_ffns_and_the_conv_module(activation, function):
    """Each module's output against its reference in torch ops with that activation."""
    from tests.models.test_convolution import reference_conv_module

    layer = tiny_encoder(activation=activation).layers[0].eval()
    x = torch.randn(2, 9, 16, generator=torch.Generator().manual_seed(1))
    mask = padding_mask(torch.tensor([9, 6]), 9)
    with torch.no_grad():
        for ffn in (layer.feed_forward_macaron, layer.feed_forward):
            expected = F.linear(function(F.linear(x, ffn.w_1.weight, ffn.w_1.bias)),
                                ffn.w_2.weight, ffn.w_2.bias)
            torch.testing.assert_close(ffn(x), expected)
        conv = layer.conv_module
        torch.testing.assert_close(conv(x, mask), reference_conv_module(
            conv, x, mask, "batch_norm", 5, function), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conv_norm", ["batch_norm", "layer_norm"])
def test_training_block_output_and_gradients_match_the_composition(conv_norm, randomize_norms,
                                                                   assert_close_scaled):
    """Training mode (BatchNorm on batch statistics), dropout 0: the block with its fused
    residual additions gives the output and gradients of the plain composition."""
    encoder = randomized_encoder(randomize_norms, conv_norm=conv_norm, dropout=0.0)
    layer = encoder.train().layers[0]
    torch.manual_seed(1)
    x = torch.randn(2, 9, 16, requires_grad=True)
    mask = padding_mask(torch.tensor([9, 6]), 9)
    _, pos_emb = encoder.pos_enc(x)
    weight = torch.randn(2, 9, 16)
    results = []
    for block in (layer, lambda *a: reference_block(layer, *a)):
        for t in (x, *layer.parameters()):
            t.grad = None
        out = block(x, pos_emb.detach(), mask)
        (out * weight).sum().backward()
        results.append((out, [x.grad] + [p.grad for p in layer.parameters()]))
    (out, grads), (expected, reference) = results
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    largest = max(g.abs().max().item() for g in reference)
    for a, b in zip(grads, reference, strict=True):
        assert_close_scaled(a, b, scale=largest)


def test_block_dropout_rate_comes_from_the_config():
    layer = tiny_encoder(dropout=0.2).layers[0]
    assert layer.dropout.p == 0.2 and layer.feed_forward.dropout.p == 0.2
