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
