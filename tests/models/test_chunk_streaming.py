"""The encoder part of streaming recognition (WeNet U2): chunk masks, causal convolution,
dynamic chunk training, and chunk-by-chunk forwards with caches equal to the full forward
under the same chunk mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from asrkit.config import ConfigError
from asrkit.config.targets import check_section
from asrkit.models.chunk_mask import (
    MAX_DYNAMIC_CHUNK,
    chunk_attention_mask,
    chunked_padding_mask,
    dynamic_chunk,
)
from asrkit.models.convolution import ConvolutionModule
from asrkit.models.encoders.conformer import ConformerEncoder
from asrkit.models.encoders.moe_conformer import MoEConformerEncoder
from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.mask import padding_mask

SMALL = {"input_dim": 20, "d_model": 16, "num_heads": 4, "ffn_dim": 32, "num_layers": 2}
CONFORMER = {**SMALL, "kernel_size": 5, "causal": True}
ENCODERS = {
    "conformer": lambda **kw: ConformerEncoder(**{**CONFORMER, **kw}),
    "transformer": lambda **kw: TransformerEncoder(**{**SMALL, **kw}),
    "transformer_rel_pos": lambda **kw: TransformerEncoder(
        **{**SMALL, "pos_enc_layer_type": "rel_pos", **kw}),
    "moe_conformer": lambda **kw: MoEConformerEncoder(**{**CONFORMER, "num_experts": 3, **kw}),
    "moe_conformer_embedding": lambda **kw: MoEConformerEncoder(**{
        **CONFORMER, "kernel_size": 4, "num_experts": 3, "embedding_layers": 1,
        "embedding_dim": 8, "conv_norm": "layer_norm", **kw}),
}


def tiny(name: str, randomize_norms, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    encoder = randomize_norms(ENCODERS[name](**kwargs))
    with torch.no_grad():  # u/v biases away from their small init
        for param_name, param in encoder.named_parameters():
            if "pos_bias" in param_name:
                param.normal_()
    return encoder.eval()


def naive_chunk_mask(size: int, chunk_size: int, left_chunks: int) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    for i in range(size):
        for j in range(size):
            if chunk_size <= 0:
                mask[i, j] = True
                continue
            behind = i // chunk_size - j // chunk_size
            mask[i, j] = behind >= 0 and (left_chunks < 0 or behind <= left_chunks)
    return mask


# (a) chunk masks


@pytest.mark.parametrize("size", [1, 7, 16, 23])
@pytest.mark.parametrize("chunk_size", [0, 1, 3, 4, 30])
@pytest.mark.parametrize("left_chunks", [-1, 0, 1, 2])
def test_chunk_mask_equals_the_double_loop(size, chunk_size, left_chunks):
    mask = chunk_attention_mask(size, chunk_size, left_chunks, torch.device("cpu"))
    assert mask.dtype == torch.bool and mask.shape == (size, size)
    assert torch.equal(mask, naive_chunk_mask(size, chunk_size, left_chunks))


def test_chunked_padding_mask_keeps_valid_keys_and_no_empty_row():
    lengths = torch.tensor([9, 4, 0])
    mask = chunked_padding_mask(lengths, 9, 3, 1)  # (batch, 9, 9)
    chunks = naive_chunk_mask(9, 3, 1)
    for b, length in enumerate(lengths.tolist()):
        valid = torch.arange(9) < length
        expected = chunks & valid.unsqueeze(0)
        expected[~valid] = valid  # padded queries: every valid key
        assert torch.equal(mask[b], expected)
    assert mask[:2].any(-1).all()


# (b) chunk by chunk == full forward with the chunk mask


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("chunk_size", [4, 8])
@pytest.mark.parametrize("left_chunks", [-1, 2])
def test_chunk_by_chunk_equals_the_masked_full_forward(name, chunk_size, left_chunks,
                                                       randomize_norms):
    encoder = tiny(name, randomize_norms)
    feats = torch.randn(2, 141, 20, generator=torch.Generator().manual_seed(1))  # 34 frames
    lens = torch.tensor([141, 141])
    with torch.no_grad():
        full, full_lens = encoder(feats, lens, chunk_size=chunk_size, left_chunks=left_chunks)
        offline, _ = encoder(feats, lens)
    streamed = encoder.forward_chunk_by_chunk(feats, chunk_size, left_chunks)
    assert streamed.shape == full.shape == (2, int(full_lens[0]), 16)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)
    assert (full - offline).abs().max() > 1e-3, "the chunk mask changes the output"


@pytest.mark.parametrize("input_layer", ["conv2d6", "conv2d8", "linear"])
def test_chunk_windows_fit_every_input_layer(input_layer, randomize_norms):
    encoder = tiny("conformer", randomize_norms, input_layer=input_layer)
    feats = torch.randn(1, 123, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, _ = encoder(feats, torch.tensor([123]), chunk_size=3, left_chunks=1)
    streamed = encoder.forward_chunk_by_chunk(feats, 3, 1)
    torch.testing.assert_close(streamed, full, atol=1e-5, rtol=1e-5)


def test_caches_are_bounded_by_the_left_context(randomize_norms):
    encoder = tiny("conformer", randomize_norms)
    att_cache, cnn_cache = [], []
    with torch.no_grad():
        for step in range(5):  # windows of 4 encoder frames: (4-1)*4 + 7 input frames
            chunk = torch.randn(1, 19, 20)
            out, att_cache, cnn_cache = encoder.forward_chunk(chunk, 4 * step, att_cache,
                                                              cnn_cache, left_chunks=2)
            assert out.shape == (1, 4, 16)
            assert [c.shape for c in att_cache] == [(1, 4, min(4 * (step + 1), 8), 8)] * 2
            assert [c.shape for c in cnn_cache] == [(1, 4, 16)] * 2  # kernel_size - 1 frames


def test_chunk_by_chunk_needs_a_causal_convolution(randomize_norms):
    encoder = tiny("conformer", randomize_norms, causal=False)
    with pytest.raises(ValueError, match="causal=True"):
        encoder.forward_chunk_by_chunk(torch.randn(1, 40, 20), 4)


def test_shorter_than_one_frame_gives_no_frames(randomize_norms):
    encoder = tiny("transformer", randomize_norms)
    assert encoder.forward_chunk_by_chunk(torch.randn(1, 5, 20), 4).shape == (1, 0, 16)


# (c) causal convolution


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
@pytest.mark.parametrize("kernel_size", [4, 5])
def test_causal_convolution_ignores_the_future(norm, kernel_size, randomize_norms):
    torch.manual_seed(0)
    conv = randomize_norms(ConvolutionModule(8, kernel_size, norm, causal=True)).eval()
    x = torch.randn(2, 20, 8)
    mask = padding_mask(torch.tensor([20, 20]), 20)
    with torch.no_grad():
        y = conv(x, mask)
        for t in (0, 7, 18):
            perturbed = x.clone()
            perturbed[:, t + 1:] += 10 * torch.randn(2, 19 - t, 8)
            y_perturbed = conv(perturbed, mask)
            assert torch.equal(y_perturbed[:, : t + 1], y[:, : t + 1])
            assert not torch.allclose(y_perturbed[:, t + 1:], y[:, t + 1:])


def test_causal_convolution_is_left_padded_in_torch_ops():
    torch.manual_seed(0)
    conv = ConvolutionModule(8, 5, "layer_norm", causal=True).eval()
    x = torch.randn(2, 12, 8)
    with torch.no_grad():
        y = conv(x, padding_mask(torch.tensor([12, 12]), 12))
        h = F.glu(F.conv1d(x.transpose(1, 2), conv.pointwise_conv1.weight,
                           conv.pointwise_conv1.bias), dim=1)  # (batch, d, T)
        h = F.conv1d(F.pad(h, (4, 0)), conv.depthwise_conv.weight, conv.depthwise_conv.bias,
                     groups=8)
        h = F.silu(F.layer_norm(h.transpose(1, 2), (8,), conv.norm.weight, conv.norm.bias))
        expected = F.linear(h, conv.pointwise_conv2.weight.squeeze(-1), conv.pointwise_conv2.bias)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


# (d) dynamic chunk training


def test_dynamic_chunk_draws_full_context_half_the_time_else_1_to_25():
    torch.manual_seed(0)
    draws = [dynamic_chunk(100) for _ in range(5000)]
    full = sum(chunk == 0 for chunk, _ in draws)
    assert abs(full / 5000 - 0.5) < 0.03
    sizes = torch.tensor([chunk for chunk, _ in draws if chunk > 0])
    counts = torch.bincount(sizes, minlength=MAX_DYNAMIC_CHUNK + 1)
    assert counts[0] == 0 and len(counts) == MAX_DYNAMIC_CHUNK + 1  # only 1..25
    expected = (5000 - full) / MAX_DYNAMIC_CHUNK  # about 100 each
    assert ((counts[1:] - expected).abs() < 0.35 * expected).all()
    assert all(left == -1 for _, left in draws)


def test_dynamic_left_chunks_are_drawn_within_the_utterance():
    torch.manual_seed(1)
    draws = [dynamic_chunk(40, dynamic_left_chunks=True) for _ in range(2000)]
    lefts = [(chunk, left) for chunk, left in draws if chunk > 0]
    assert all(0 <= left <= 39 // chunk for chunk, left in lefts)
    assert {left for chunk, left in lefts if chunk == 1} >= {0, 39}
    assert all(left == -1 for chunk, left in draws if chunk == 0)


def test_training_with_dynamic_chunk_uses_one_draw_per_batch(randomize_norms):
    encoder = tiny("conformer", randomize_norms, dynamic_chunk=True, dropout=0.0,
                   positional_dropout=0.0, conv_norm="layer_norm").train()
    feats, lens = torch.randn(2, 141, 20), torch.tensor([141, 100])
    chunked = 0
    with torch.no_grad():
        for seed in range(6):
            torch.manual_seed(seed)
            out, _ = encoder(feats, lens)
            torch.manual_seed(seed)
            chunk, left = dynamic_chunk(34)
            expected, _ = encoder(feats, lens, chunk_size=chunk, left_chunks=left)
            assert torch.equal(out, expected)
            chunked += chunk > 0
        assert 0 < chunked < 6
        encoder.eval()  # decoding: the configured chunk (0: full context), no draw
        state = torch.get_rng_state()
        assert torch.equal(encoder(feats, lens)[0], encoder(feats, lens, chunk_size=0)[0])
        assert torch.equal(torch.get_rng_state(), state)


def test_static_chunk_training_and_default_decoding_chunk(randomize_norms):
    encoder = tiny("transformer", randomize_norms, chunk_size=4, left_chunks=1)
    feats, lens = torch.randn(2, 60, 20), torch.tensor([60, 41])
    with torch.no_grad():
        assert torch.equal(encoder(feats, lens)[0], encoder(feats, lens, 4, 1)[0])
        assert not torch.equal(encoder(feats, lens)[0], encoder(feats, lens, 0)[0])


# (e) defaults unchanged


def offline_reference(encoder: torch.nn.Module, feats: torch.Tensor, lens: torch.Tensor):
    """The forward without chunk options: the padding mask over keys in every layer."""
    x, out_lens = encoder.input_layer(feats, lens)
    mask = padding_mask(out_lens, x.size(1))
    if isinstance(encoder, TransformerEncoder):
        x = encoder.pos_enc(x)
        for layer in encoder.layers:
            x = layer(x, mask.unsqueeze(1))
    else:
        x, pos_emb = encoder.pos_enc(x)
        for layer in encoder.layers:
            x = layer(x, pos_emb, mask)
            x = x[0] if isinstance(x, tuple) else x  # the MoE layer's routings
    return encoder.final_norm(x)


@pytest.mark.parametrize("name", ["conformer", "transformer", "moe_conformer"])
def test_defaults_give_the_offline_encoder_bitwise(name, randomize_norms):
    torch.manual_seed(0)
    build = {"conformer": ConformerEncoder, "transformer": TransformerEncoder,
             "moe_conformer": MoEConformerEncoder}[name]
    extra = {} if name == "transformer" else {"kernel_size": 5}
    encoder = randomize_norms(build(**SMALL, **extra)).eval()
    feats, lens = torch.randn(3, 64, 20), torch.tensor([64, 40, 20])
    with torch.no_grad():
        enc, _ = encoder(feats, lens)
        assert torch.equal(enc, offline_reference(encoder, feats, lens))
        assert torch.equal(enc, encoder(feats, lens, chunk_size=0)[0])
        assert torch.equal(enc, encoder(feats, lens, chunk_size=15)[0])  # one chunk
        causal = build(**SMALL, **extra, causal=True) if extra else None
    if causal is not None:  # the same parameters: checkpoints load either way
        assert {k: v.shape for k, v in causal.state_dict().items()} == {
            k: v.shape for k, v in encoder.state_dict().items()}


# the config keys


@pytest.mark.parametrize("name", ["conformer", "transformer", "moe_conformer"])
def test_encoder_yaml_keys_pass_the_config_check(name):
    section = OmegaConf.to_container(OmegaConf.load(f"conf/encoder/{name}.yaml"))
    section["input_dim"] = 80
    assert section["chunk_size"] == 0 and section["left_chunks"] == -1
    assert section["dynamic_chunk"] is False
    check_section(section, "encoder")
    check_section({**section, "chunk_size": 16, "left_chunks": 4, "dynamic_chunk": True},
                  "encoder")
    with pytest.raises(ConfigError, match=r"^encoder\.left_chunks: must be >= -1"):
        check_section({**section, "left_chunks": -2}, "encoder")
    with pytest.raises(ConfigError, match=r"^encoder\.chunk_size: must be >= 0"):
        check_section({**section, "chunk_size": -1}, "encoder")
    with pytest.raises(ConfigError, match=r"^encoder\.dynamic_chunk: must be a boolean"):
        check_section({**section, "dynamic_chunk": 3}, "encoder")
