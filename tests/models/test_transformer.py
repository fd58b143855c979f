import math

import pytest
import torch
import torch.nn.functional as F

from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.mask import padding_mask
from asrkit.models.positional_encoding import sinusoid


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
    assert torch.equal(encoder.output_lengths(torch.tensor([50, 30])), lens)


@pytest.mark.parametrize("input_layer,pos", [("conv2d4", "abs_pos"), ("linear", "abs_pos"),
                                             ("conv2d4", "rel_pos")])
def test_padding_invariance(input_layer, pos, padded_batch, assert_padding_invariant):
    encoder = tiny_encoder(input_layer=input_layer, pos_enc_layer_type=pos)
    feats, lens = padded_batch([48, 33, 17], 20)
    assert_padding_invariant(encoder, feats, lens)


def reference_layer(layer, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
    """Pre-norm Transformer layer from the layer's own submodules:
    x + MHSA(LN(x)), then x + FFN(LN(x)) (no norm after the residual)."""
    y = layer.norm_mha(x)
    x = x + layer.self_attn(y, y, y, attn_mask)
    return x + layer.feed_forward(layer.norm_ff(x))


def randomized_encoder(randomize_norms, **kwargs) -> TransformerEncoder:
    return randomize_norms(tiny_encoder(**kwargs), seed=1)


def test_layer_is_pre_norm(randomize_norms):
    layer = randomized_encoder(randomize_norms).layers[0]
    torch.manual_seed(1)
    x = 3.0 * torch.randn(2, 7, 16) + 1.0  # (batch, time, d_model), far from normalised
    attn_mask = padding_mask(torch.tensor([7, 4]), 7).unsqueeze(1)  # (batch, 1, T)
    with torch.no_grad():
        torch.testing.assert_close(layer(x, attn_mask), reference_layer(layer, x, attn_mask))


def test_encoder_is_input_layer_scaled_positions_layers_final_norm(randomize_norms):
    encoder = randomized_encoder(randomize_norms)
    torch.manual_seed(2)
    feats, feat_lens = torch.randn(2, 48, 20), torch.tensor([48, 33])
    with torch.no_grad():
        x, lens = encoder.input_layer(feats, feat_lens)  # (batch, T', d_model)
        x = x * math.sqrt(16) + sinusoid(torch.arange(x.size(1)), 16)  # Vaswani et al. 3.5
        attn_mask = padding_mask(lens, x.size(1)).unsqueeze(1)
        for layer in encoder.layers:
            x = reference_layer(layer, x, attn_mask)
        expected = F.layer_norm(x, (16,), encoder.final_norm.weight, encoder.final_norm.bias)
        enc, enc_lens = encoder(feats, feat_lens)
    assert torch.equal(enc_lens, lens)
    torch.testing.assert_close(enc, expected)


def test_rel_pos_encoder_scores_distances_in_every_layer(randomize_norms):
    """pos_enc_layer_type=rel_pos: no sinusoids added to the input (only the sqrt(d)
    scale), and every layer's attention is given the encodings of the distances
    T'-1 .. -(T'-1) (Dai et al. 2019), as the Conformer's is."""
    encoder = randomized_encoder(randomize_norms, pos_enc_layer_type="rel_pos")
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "pos_bias" in name:  # u/v biases away from their zero init
                param.normal_()
    torch.manual_seed(2)
    feats, feat_lens = torch.randn(2, 48, 20), torch.tensor([48, 33])
    with torch.no_grad():
        x, lens = encoder.input_layer(feats, feat_lens)  # (batch, T', d_model)
        length = x.size(1)
        x = x * math.sqrt(16)
        pos_emb = sinusoid(torch.arange(length - 1, -length, -1), 16)  # (2T'-1, d)
        attn_mask = padding_mask(lens, length).unsqueeze(1)
        for layer in encoder.layers:
            y = layer.norm_mha(x)
            x = x + layer.self_attn(y, pos_emb, attn_mask)
            x = x + layer.feed_forward(layer.norm_ff(x))
        expected = F.layer_norm(x, (16,), encoder.final_norm.weight, encoder.final_norm.bias)
        enc, enc_lens = encoder(feats, feat_lens)
    assert torch.equal(enc_lens, lens)
    torch.testing.assert_close(enc, expected)
    absolute = randomized_encoder(randomize_norms)
    assert sum(p.numel() for p in encoder.parameters()) > sum(
        p.numel() for p in absolute.parameters())  # + the position projection and u/v


def test_unknown_pos_enc_layer_type():
    with pytest.raises(ValueError, match="pos_enc_layer_type must be one of abs_pos, rel_pos"):
        tiny_encoder(pos_enc_layer_type="learned")
