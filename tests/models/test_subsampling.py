import pytest
import torch
import torch.nn.functional as F

from asrkit.models.subsampling import (
    ChannelsLastConv2d,
    Conv2dSubsampling,
    LinearInput,
    build_input_layer,
    channels_first_copy,
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


def reference_conv_subsampling(layer: Conv2dSubsampling, x: torch.Tensor) -> torch.Tensor:
    """The channels-first formulation in torch ops: (batch, 1, T, F) -> conv/ReLU stack ->
    (batch, T', channels * F') with the channel index outer -> linear."""
    y = x.unsqueeze(1)
    for conv in (m for m in layer.conv if isinstance(m, torch.nn.Conv2d)):
        y = F.relu(F.conv2d(y, conv.weight, conv.bias, conv.stride))
    batch, channels, time, freq = y.shape
    y = y.transpose(1, 2).reshape(batch, time, channels * freq)
    return F.linear(y, layer.out.weight, layer.out.bias)


def _grads(layer, x, out, weight):
    for t in (x, *layer.parameters()):
        t.grad = None
    (out.float() * weight).sum().backward()
    return [x.grad] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("factor,channels", [(4, None), (6, None), (8, None), (4, 6)])
def test_channels_last_stack_matches_channels_first_ops(factor, channels, assert_close_scaled):
    """Same output and gradients (input and every parameter) as the NCHW formulation."""
    torch.manual_seed(0)
    layer = Conv2dSubsampling(input_dim=23, d_model=8, factor=factor, channels=channels)
    x = torch.randn(2, 41, 23, requires_grad=True)  # (batch, time, mel)
    out, _ = layer(x, torch.tensor([41, 30]))
    weight = torch.randn(out.shape)
    ours = _grads(layer, x, out, weight)
    expected = reference_conv_subsampling(layer, x)
    reference = _grads(layer, x, expected, weight)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for a, b in zip(ours, reference, strict=True):
        assert_close_scaled(a, b)


def test_bf16_autocast_matches_channels_first_ops():
    torch.manual_seed(0)
    layer = Conv2dSubsampling(input_dim=20, d_model=8, factor=4)
    x = torch.randn(2, 33, 20, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x, torch.tensor([33, 20]))
        expected = reference_conv_subsampling(layer, x)
    assert out.dtype == expected.dtype == torch.bfloat16
    weight = torch.randn(out.shape)
    ours = _grads(layer, x, out, weight)
    reference = _grads(layer, x, expected, weight)
    torch.testing.assert_close(out.float(), expected.float(), atol=0.05, rtol=0.05)
    for a, b in zip(ours, reference, strict=True):
        assert a.dtype == torch.float32  # parameter gradients stay fp32
        assert (a - b).norm() <= 0.05 * b.norm()


@pytest.mark.parametrize("factor, bins", [(8, 20), (4, 9), (6, 12)])
def test_bf16_with_one_frequency_bin_left_matches_fp32(factor, bins):
    """torch 2.11's bf16 CPU convolution gave wrong values (up to 1e35) when its output is one
    bin wide; the layer's output and gradients under bf16 autocast stay near fp32's."""
    torch.manual_seed(0)
    layer = Conv2dSubsampling(input_dim=bins, d_model=8, factor=factor)
    x = torch.randn(2, 60, bins, requires_grad=True)
    lengths = torch.tensor([60, 41])
    assert conv_output_length(bins, layer.layers) == 1
    expected, _ = layer(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x, lengths)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)


def test_bf16_conv_one_bin_wide_output_and_gradients_match_fp32():
    """The one-bin-wide convolution itself: bf16 output and gradients within bf16 rounding
    (0.4 % relative here) of fp32's."""
    torch.manual_seed(0)
    x0 = torch.randn(2, 16, 14, 4).to(memory_format=torch.channels_last)  # -> width 1
    w, b = torch.randn(16, 16, 3, 3), torch.randn(16)
    grad_out, results = torch.randn(2, 16, 6, 1), []
    for bf16 in (False, True):
        x, weight, bias = (t.clone().requires_grad_(True) for t in (x0, w, b))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = ChannelsLastConv2d.apply(x, weight, bias, 2)
        (y.float() * grad_out).sum().backward()
        results.append((y.detach().float(), x.grad, weight.grad, bias.grad))
    for ours, exact in zip(*results, strict=True):
        assert (ours - exact).norm() <= 0.004 * exact.norm()


@pytest.mark.parametrize("name, factor, needed", [("conv2d4", 4, 7), ("conv2d6", 6, 11),
                                                  ("conv2d8", 8, 15)])
def test_an_input_too_short_for_one_frame_is_named(name, factor, needed):
    layer = build_input_layer(name, input_dim=20, d_model=8).eval()
    assert layer(torch.randn(1, needed, 20), torch.tensor([needed]))[0].shape == (1, 1, 8)
    for frames in (0, needed - 1):
        with pytest.raises(ValueError) as error:
            layer(torch.randn(1, frames, 20), torch.tensor([frames]))
        assert str(error.value) == (f"input of {frames} frames is shorter than the {needed} "
                                    f"that conv2d{factor} subsampling needs for one output "
                                    f"frame")


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, False), (True, False, False)])
@pytest.mark.parametrize("kernel,stride,grad_layout", [
    (3, 2, torch.channels_last), (5, 3, torch.channels_last), (3, 2, torch.contiguous_format)])
def test_channels_last_conv2d_gradients(needs, kernel, stride, grad_layout):
    """Every gradient (the fp32 weight gradient through a channels-first copy) equals
    F.conv2d's autograd, for the kernels of conv2d4/6/8 and either layout of the gradient."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 13, 11).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(4, 5, kernel, kernel), torch.randn(4)
    for t, need in zip((x, weight, bias), needs, strict=True):
        t.requires_grad_(need)
    out = ChannelsLastConv2d.apply(x, weight, bias, stride)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn(out.shape).contiguous(memory_format=grad_layout)
    ours = torch.autograd.grad(out, [t for t in (x, weight, bias) if t.requires_grad], grad)
    expected = F.conv2d(x, weight, bias, stride)
    reference = torch.autograd.grad(expected, [t for t in (x, weight, bias) if t.requires_grad],
                                    grad)
    torch.testing.assert_close(out, expected)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 256, 7, 77), (3, 3, 5, 4), (1, 1000, 1, 2),
                                   (2, 70000, 1, 2)])
def test_channels_first_copy_equals_contiguous(shape):
    """The blocked copy gives torch's contiguous tensor, across several blocks (256 channels:
    256 positions a block, 539 positions), a block wider than the tensor (two positions),
    and more channels than a block holds (one position a block)."""
    torch.manual_seed(0)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    out = channels_first_copy(x)
    assert out.is_contiguous() and out.shape == x.shape
    assert torch.equal(out, x.contiguous())


def test_channels_first_copy_of_other_layouts():
    """Tensors that are not channels-last (already contiguous, a transposed view) are copied
    as x.contiguous() does; a contiguous one is returned as it is."""
    x = torch.randn(2, 4, 6, 5)
    assert channels_first_copy(x) is x
    view = x.transpose(2, 3)
    assert torch.equal(channels_first_copy(view), view.contiguous())
    assert channels_first_copy(view).is_contiguous()
