import math

import pytest
import torch

from asrkit.models.encoders.contextnet import ContextNetEncoder, block_channels
from asrkit.models.squeeze_excitation import SqueezeExcitation


def tiny_encoder(**kwargs) -> ContextNetEncoder:
    torch.manual_seed(0)
    encoder = ContextNetEncoder(**{"input_dim": 12, "alpha": 1 / 16, "layers_per_block": 2,
                                   **kwargs})
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return encoder.eval()


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_output_length_is_ceil_t_over_8():
    encoder = tiny_encoder()
    for frames in (1, 9, 64):  # (each new shape costs oneDNN a kernel build: keep them few)
        with torch.no_grad():
            enc, lens = encoder(torch.randn(1, frames, 12), torch.tensor([frames]))
        assert enc.shape == (1, math.ceil(frames / 8), encoder.output_dim), frames
        assert lens.tolist() == [math.ceil(frames / 8)], frames
    lengths = [64, 63, 57, 56, 17, 16, 9, 8, 7, 1]  # in a padded batch
    with torch.no_grad():
        enc, lens = encoder(torch.randn(len(lengths), 64, 12), torch.tensor(lengths))
    assert enc.size(1) == 8 and lens.tolist() == [math.ceil(t / 8) for t in lengths]


def test_padding_invariance(padded_batch, assert_padding_invariant):
    encoder = tiny_encoder()
    feats, lens = padded_batch([61, 40, 17, 9], 12)
    assert_padding_invariant(encoder, feats, lens)


def test_masked_squeeze_excitation_ignores_padding():
    torch.manual_seed(0)
    se = SqueezeExcitation(16, reduction=4)
    x = torch.randn(1, 16, 10)
    mask = torch.tensor([[True] * 6 + [False] * 4])
    padded = x.clone()
    padded[..., 6:] = 1e4
    with torch.no_grad():
        torch.testing.assert_close(se(padded, mask)[..., :6], se(x[..., :6], mask[:, :6]))
        mean = x[..., :6].mean(-1)  # the gate from an independent computation
        gate = torch.sigmoid(se.fc2(torch.nn.functional.silu(se.fc1(mean))))
        torch.testing.assert_close(se(x, mask)[..., :6], x[..., :6] * gate.unsqueeze(-1))


def test_block_structure_follows_the_paper():
    with torch.device("meta"):
        encoder = ContextNetEncoder(input_dim=80, alpha=1.0)
    assert len(encoder.layers) == 23
    assert block_channels(1.0) == [256] * 11 + [512] * 11 + [640]
    assert encoder.output_dim == 640 and encoder.intermediate_dims()[10:12] == [256, 512]
    for i, block in enumerate(encoder.layers):
        edge = i in (0, 22)
        assert len(block.layers) == (1 if edge else 5)
        assert (block.residual is None) == edge
        if not edge:  # the paper's block: swish(SE(f(x)) + P(x))
            assert isinstance(block.residual[0], torch.nn.Conv1d)
            assert isinstance(block.activation, torch.nn.SiLU)
        assert block.stride == (2 if i in (3, 7, 14) else 1)
        assert all(layer.depthwise.kernel_size == (5,) for layer in block.layers)
    # width multiplier: parameters grow about as alpha^2 (meta device: no memory, no init)
    with torch.device("meta"):
        sizes = [count(ContextNetEncoder(input_dim=80, alpha=a)) for a in (0.5, 1.0, 2.0)]
    assert sizes == [5_744_520, 22_640_000, 89_885_040]  # README: ContextNet sizes


def test_intermediate_blocks_have_their_own_width_and_frame_rate():
    encoder = tiny_encoder()
    out = encoder.forward_with_intermediates(torch.randn(2, 40, 12), torch.tensor([40, 21]),
                                             layers=(4, 23))
    hidden, lens = out.intermediates[4]  # C3: the first strided block
    assert hidden.shape == (2, 20, encoder.intermediate_dims()[3]) and lens.tolist() == [20, 11]
    torch.testing.assert_close(out.intermediates[23][0], out.enc)
    with pytest.raises(ValueError, match="outside"):
        encoder.forward_with_intermediates(torch.randn(1, 8, 12), torch.tensor([8]), (24,))


def test_identity_residual_blocks_start_as_the_identity():
    """residual=identity: a block whose width and frame rate stay is SE(f(x)) + x with f's
    last BatchNorm scale at 0, so at initialisation it returns its input exactly."""
    torch.manual_seed(0)
    encoder = ContextNetEncoder(input_dim=12, alpha=1 / 16, layers_per_block=2,
                                residual="identity")
    x = torch.randn(2, 24, 12)  # (batch, frames, mel bins)
    lens = torch.tensor([24, 15])
    identity_blocks = 0
    for i, block in enumerate(encoder.layers):
        changes_shape = i in (0, 3, 7, 11, 14, 22)  # widths change at C0, C11, C22
        if i == 0:
            assert block.residual is None
            continue
        assert isinstance(block.activation, torch.nn.Identity)  # no activation after the sum
        assert block.layers[-1].norm.weight.abs().sum() == 0
        if changes_shape:
            assert isinstance(block.residual, torch.nn.Sequential), i  # a projection
            continue
        assert isinstance(block.residual, torch.nn.Identity), i
        identity_blocks += 1
        width = block.layers[0].depthwise.in_channels
        inp = torch.randn(2, width, 24)
        out, out_lens = block(inp, lens)
        torch.testing.assert_close(out, inp, rtol=0, atol=0)
        assert out_lens.tolist() == lens.tolist()
    assert identity_blocks == 17
    assert encoder(x, lens)[0].shape == (2, 3, encoder.output_dim)


def test_identity_residual_block_is_se_of_the_branch_plus_the_input(randomize_norms):
    """With trained-looking BatchNorms the identity block is SE(f(x)) + x, written out here
    in torch ops (depthwise conv, pointwise conv, BatchNorm, swish; the masked mean gate)."""
    torch.manual_seed(0)
    encoder = randomize_norms(ContextNetEncoder(input_dim=12, alpha=1 / 16,
                                                layers_per_block=2, residual="identity")).eval()
    block = encoder.layers[1]
    x = torch.randn(2, block.layers[0].depthwise.in_channels, 20)
    lens = torch.tensor([20, 13])
    valid = (torch.arange(20) < lens.unsqueeze(1)).unsqueeze(1)
    h = x
    for layer in block.layers:
        h = torch.nn.functional.conv1d(h * valid, layer.depthwise.weight, padding=2,
                                       groups=h.size(1))
        h = torch.nn.functional.conv1d(h, layer.pointwise.weight)
        norm = layer.norm
        h = (h - norm.running_mean[:, None]) / torch.sqrt(norm.running_var[:, None] + norm.eps)
        h = torch.nn.functional.silu(h * norm.weight[:, None] + norm.bias[:, None])
    mean = (h * valid).sum(-1) / lens.unsqueeze(1)
    gate = torch.sigmoid(block.se.fc2(torch.nn.functional.silu(block.se.fc1(mean))))
    with torch.no_grad():
        out, _ = block(x, lens)
        torch.testing.assert_close(out, h * gate.unsqueeze(-1) + x)


def test_identity_residual_keeps_padding_invariance(padded_batch, assert_padding_invariant,
                                                    randomize_norms):
    torch.manual_seed(0)
    encoder = randomize_norms(ContextNetEncoder(input_dim=12, alpha=1 / 16,
                                                layers_per_block=2, residual="identity"))
    feats, lens = padded_batch([61, 40, 17, 9], 12)
    assert_padding_invariant(encoder.eval(), feats, lens)


def test_identity_residual_drops_the_projections_of_unchanged_blocks():
    """Parameters: the paper's encoder, less a 1x1 conv and a BatchNorm (C^2 + 2C) for each
    of the 17 blocks that keep their shape, plus C22's new projection (512 -> 640)."""
    with torch.device("meta"):
        paper = count(ContextNetEncoder(input_dim=80, alpha=1.0))
        identity = count(ContextNetEncoder(input_dim=80, alpha=1.0, residual="identity"))
    widths = block_channels(1.0)
    kept = [i for i in range(1, 22) if widths[i - 1] == widths[i] and i not in (3, 7, 14)]
    assert len(kept) == 17
    dropped = sum(widths[i] ** 2 + 2 * widths[i] for i in kept)
    assert identity == paper - dropped + (512 * 640 + 2 * 640)


def test_an_unknown_residual_is_refused():
    with pytest.raises(ValueError, match="residual: must be one of projection, identity"):
        ContextNetEncoder(input_dim=12, alpha=1 / 16, layers_per_block=1, residual="identiy")


def test_bad_options_are_named_as_the_config_key_the_builder_reports():
    """The model builder names a ValueError whose message starts with `<key>:` as
    `encoder.<key>` (asrkit.models.build)."""
    from asrkit.models.build import ModelConfigError, build_model

    config = {"encoder": {"_target_": "asrkit.models.encoders.contextnet.ContextNetEncoder",
                          "input_dim": 12, "alpha": 1 / 16, "layers_per_block": 1},
              "decoder": None,
              "model": {"_target_": "asrkit.models.asr_model.ASRModel", "ctc_weight": 1.0}}
    for key, value, message in [("kernel_size", 4, "must be odd, got 4"),
                                ("strided_blocks", [25], "[25] are outside C0..C22")]:
        with pytest.raises(ModelConfigError) as error:
            build_model({**config, "encoder": {**config["encoder"], key: value}}, 10)
        assert str(error.value) == f"encoder.{key}: {message}"
