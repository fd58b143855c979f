"""The recomputed attention weights reproduce the modules' own outputs: weights @ V through
the output projection equals what the module returned."""

import pytest
import torch

from asrkit.models.attention import MultiHeadAttention, merge_heads, split_heads
from asrkit.models.positional_encoding import RelPositionalEncoding
from asrkit.models.rel_attention import RelPositionMultiHeadAttention
from asrkit.training.attention_maps import record_attention, select_maps
from asrkit.training.tensorboard import heatmap


def check_reconstruction(module, value_input, output, weights):
    v = split_heads(module.linear_v(value_input), module.num_heads)
    rebuilt = module.linear_out(merge_heads(weights @ v))
    torch.testing.assert_close(rebuilt, output, atol=1e-5, rtol=1e-5)


def test_multi_head_cross_attention_weights():
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, kv_dim=12).eval()
    query, memory = torch.randn(2, 5, 16), torch.randn(2, 9, 12)
    mask = torch.ones(2, 1, 9, dtype=torch.bool)
    mask[1, :, 6:] = False  # padding of the second utterance
    with record_attention(attn) as recorded, torch.no_grad():
        out = attn(query, memory, memory, mask)
    weights = recorded[""]
    assert weights.shape == (2, 4, 5, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert (weights[1, :, :, 6:] == 0).all()
    check_reconstruction(attn, memory, out, weights)


def test_relative_position_self_attention_weights():
    torch.manual_seed(0)
    attn = RelPositionMultiHeadAttention(16, 2).eval()
    x, pos_emb = RelPositionalEncoding(16, 0.0)(torch.randn(1, 7, 16))
    with record_attention(attn) as recorded, torch.no_grad():
        out = attn(x, pos_emb, torch.ones(1, 7, 7, dtype=torch.bool))
    check_reconstruction(attn, x, out, recorded[""])
    assert not attn._forward_hooks  # hooks removed on exit


def test_select_maps_and_heatmap():
    weights = {f"encoder.layers.{i}.self_attn": torch.rand(1, 4, 6, 6) for i in range(3)}
    weights["decoder.layers.0.src_attn"] = torch.rand(1, 4, 3, 6)
    weights["decoder.layers.0.self_attn"] = torch.rand(1, 4, 3, 3)
    maps = select_maps(weights, 3)
    assert sorted(maps) == ["attention/decoder_cross/layer0",
                            "attention/encoder_self/layer0_head0",
                            "attention/encoder_self/layer1_head1",
                            "attention/encoder_self/layer2_head2"]
    torch.testing.assert_close(maps["attention/decoder_cross/layer0"],
                               weights["decoder.layers.0.src_attn"][0].mean(0))
    image = heatmap(torch.tensor([[0.0, 1.0], [0.5, 0.25]]), min_size=8)
    assert image.shape == (8, 8, 3) and image.dtype.name == "uint8"
    assert (image[:4, :4] == image[0, 0]).all() and not (image[0, 0] == image[0, 4]).all()


@pytest.mark.parametrize("layers, heads", [(4, 2), (3, 4), (1, 4), (6, 1)])
def test_every_requested_encoder_picture_is_a_different_head(layers, heads):
    """Up to layers x heads pictures are all drawn, each of another (layer, head), from the
    first layer to the last; asking for more draws each head once."""
    weights = {f"encoder.layers.{i}.self_attn": torch.rand(1, heads, 5, 5)
               for i in range(layers)}
    for wanted in range(1, layers * heads + 3):
        maps = select_maps(weights, wanted)
        drawn = [(int(k.split("layer")[1].split("_")[0]), int(k.split("head")[1])) for k in maps]
        assert len(drawn) == len(set(drawn)) == min(wanted, layers * heads)
        for (layer, head), tag in zip(drawn, maps, strict=True):
            assert torch.equal(maps[tag], weights[f"encoder.layers.{layer}.self_attn"][0, head])
        if wanted >= 2:
            assert {0, layers - 1} <= {layer for layer, _ in drawn}


def test_only_the_encoders_own_layers_are_drawn_as_encoder_layers():
    """The 3M model's shared embedding block (encoder.embedding.layers.0) is not layer 0."""
    weights = {f"encoder.layers.{i}.self_attn": torch.rand(1, 2, 5, 5) for i in range(2)}
    weights["encoder.embedding.layers.0.self_attn"] = torch.rand(1, 2, 5, 5)
    maps = select_maps(weights, 4)
    assert len(maps) == 4
    for tag, image in maps.items():
        layer, head = int(tag.split("layer")[1].split("_")[0]), int(tag.split("head")[1])
        assert torch.equal(image, weights[f"encoder.layers.{layer}.self_attn"][0, head])
