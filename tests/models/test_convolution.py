import pytest
import torch
import torch.nn.functional as F

from asrkit.models.convolution import ConvolutionModule
from asrkit.models.mask import padding_mask


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_padded_frames_do_not_leak(norm, padded_batch, assert_padding_invariant):
    torch.manual_seed(0)
    conv = ConvolutionModule(8, kernel_size=7, norm=norm).eval()
    with torch.no_grad():
        if norm == "batch_norm":  # non-trivial running statistics
            conv.norm.running_mean.normal_()
            conv.norm.running_var.uniform_(0.5, 2.0)
    feats, lens = padded_batch([20, 9, 5], 8)

    def run(x, lengths):
        return conv(x, padding_mask(lengths, x.size(1))), lengths

    assert_padding_invariant(run, feats, lens)


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel_size"):
        ConvolutionModule(8, kernel_size=4)


def reference_conv_module(conv: ConvolutionModule, x: torch.Tensor, mask: torch.Tensor,
                          norm: str, kernel_size: int, activation=F.silu) -> torch.Tensor:
    """Gulati et al. 2020, fig. 2, in torch.nn.functional ops on the module's weights:
    pointwise d -> 2d, GLU, depthwise (kernel k, 'same' padding, padded frames zeroed),
    BatchNorm (eval: running statistics) or LayerNorm over channels, swish (or
    ``activation``), pointwise d -> d."""
    d = x.size(-1)
    y = x.transpose(1, 2)  # (batch, d, T)
    y = F.conv1d(y, conv.pointwise_conv1.weight, conv.pointwise_conv1.bias)  # (batch, 2d, T)
    y = y[:, :d] * torch.sigmoid(y[:, d:])  # GLU over channels
    y = y * mask.unsqueeze(1)
    y = F.conv1d(y, conv.depthwise_conv.weight, conv.depthwise_conv.bias,
                 padding=kernel_size // 2, groups=d)
    if norm == "batch_norm":
        y = F.batch_norm(y, conv.norm.running_mean, conv.norm.running_var, conv.norm.weight,
                         conv.norm.bias, training=False, eps=1e-5)
    else:
        y = F.layer_norm(y.transpose(1, 2), (d,), conv.norm.weight, conv.norm.bias,
                         eps=1e-5).transpose(1, 2)
    y = activation(y)
    y = F.conv1d(y, conv.pointwise_conv2.weight, conv.pointwise_conv2.bias)
    return y.transpose(1, 2)  # (batch, T, d)


@pytest.mark.parametrize("kernel_size", [3, 7, 15])
@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_matches_the_paper_in_torch_ops(norm, kernel_size, randomize_norms):
    torch.manual_seed(0)
    conv = randomize_norms(ConvolutionModule(8, kernel_size=kernel_size, norm=norm)).eval()
    assert conv.depthwise_conv.weight.shape == (8, 1, kernel_size)
    x = torch.randn(3, 20, 8)  # (batch, time, dim)
    mask = padding_mask(torch.tensor([20, 13, 4]), 20)
    with torch.no_grad():
        expected = reference_conv_module(conv, x, mask, norm, kernel_size)
        torch.testing.assert_close(conv(x, mask), expected, atol=1e-5, rtol=1e-5)


def reference_conv_module_training(conv: ConvolutionModule, x: torch.Tensor, mask: torch.Tensor,
                                   norm: str, kernel_size: int, running: tuple | None):
    """As reference_conv_module, channels-first (batch, d, T) as in the paper's figure, with
    BatchNorm in training mode: batch statistics over (batch, T), running ones updated."""
    d = x.size(-1)
    y = F.conv1d(x.transpose(1, 2), conv.pointwise_conv1.weight, conv.pointwise_conv1.bias)
    y = y[:, :d] * torch.sigmoid(y[:, d:])
    y = y * mask.unsqueeze(1)
    y = F.conv1d(y, conv.depthwise_conv.weight, conv.depthwise_conv.bias,
                 padding=kernel_size // 2, groups=d)
    if norm == "batch_norm":
        y = F.batch_norm(y, running[0], running[1], conv.norm.weight, conv.norm.bias,
                         training=True, momentum=0.1, eps=1e-5)
    else:
        y = F.layer_norm(y.transpose(1, 2), (d,), conv.norm.weight, conv.norm.bias,
                         eps=1e-5).transpose(1, 2)
    y = y * torch.sigmoid(y)
    y = F.conv1d(y, conv.pointwise_conv2.weight, conv.pointwise_conv2.bias)
    return y.transpose(1, 2)


@pytest.mark.parametrize("kernel_size", [3, 15])
@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_training_output_gradients_and_running_stats_match_channels_first(
        norm, kernel_size, randomize_norms, assert_close_scaled):
    """The (batch, T, d) implementation (linear pointwise convs, channels-last depthwise
    conv, BatchNorm over batch*T rows) against the channels-first torch ops: same output,
    same gradients for the input and every parameter, same BatchNorm running statistics."""
    torch.manual_seed(0)
    conv = randomize_norms(ConvolutionModule(8, kernel_size=kernel_size, norm=norm)).train()
    x = torch.randn(3, 20, 8, requires_grad=True)  # (batch, time, dim)
    mask = padding_mask(torch.tensor([20, 13, 4]), 20)
    weight = torch.randn(3, 20, 8)
    running = None
    if norm == "batch_norm":
        running = (conv.norm.running_mean.clone(), conv.norm.running_var.clone())
    out = conv(x, mask)
    (out * weight).sum().backward()
    ours = {name: p.grad.clone() for name, p in conv.named_parameters()}
    grad_x, x.grad = x.grad.clone(), None
    conv.zero_grad()
    expected = reference_conv_module_training(conv, x, mask, norm, kernel_size, running)
    (expected * weight).sum().backward()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert_close_scaled(grad_x, x.grad)
    largest = max(g.abs().max().item() for g in ours.values())
    for name, param in conv.named_parameters():
        assert_close_scaled(ours[name], param.grad, scale=largest)
    if running is not None:
        torch.testing.assert_close(conv.norm.running_mean, running[0])
        torch.testing.assert_close(conv.norm.running_var, running[1])



def _steps(module, x, depthwise_fp32: bool) -> torch.Tensor:
    """The module's steps under CPU bf16 autocast, the depthwise one in fp32 or in bf16."""
    conv1, dw, conv2 = module.pointwise_conv1, module.depthwise_conv, module.pointwise_conv2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = F.glu(F.linear(x, conv1.weight.squeeze(-1), conv1.bias), dim=-1)  # bf16
        if depthwise_fp32:
            with torch.autocast("cpu", enabled=False):
                h = F.conv1d(h.float().transpose(1, 2), dw.weight, dw.bias, padding=2,
                             groups=h.size(-1))
        else:
            h = F.conv1d(h.transpose(1, 2), dw.weight.to(h.dtype), dw.bias.to(h.dtype),
                         padding=2, groups=h.size(-1))
        h = module.norm(h.transpose(1, 2))
        return F.linear(module.activation(h), conv2.weight.squeeze(-1), conv2.bias).float()


def test_depthwise_convolution_runs_in_fp32_under_cpu_autocast():
    """oneDNN's bf16 depthwise kernel is JIT-built per shape (minutes per batch with 2 threads
    on an AVX512-BF16 CPU), so under CPU autocast the depthwise step is computed in fp32:
    the module equals its steps written out with that precision split, not with a bf16 one."""
    torch.manual_seed(0)
    module = ConvolutionModule(64, 5, norm="layer_norm").eval()
    x = torch.randn(2, 40, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, torch.ones(2, 40, dtype=torch.bool))
    assert out.dtype == torch.bfloat16
    split, all_bf16 = _steps(module, x, True), _steps(module, x, False)
    error_split = (out.float() - split).abs().max()
    error_bf16 = (out.float() - all_bf16).abs().max()
    assert error_split < 0.25 * error_bf16, (error_split, error_bf16)


def test_every_gradient_has_its_parameters_strides():
    """DDP's reducer compares each gradient's strides with its parameter's bucket view: the
    depthwise weight's gradient came back with another stride on its size-1 axis (a warning
    on every rank and a copy per step)."""
    torch.manual_seed(0)
    module = ConvolutionModule(16, 7, "batch_norm")
    x = torch.randn(2, 30, 16)
    mask = padding_mask(torch.tensor([30, 22]), 30)
    module(x, mask).sum().backward()
    for name, param in module.named_parameters():
        assert param.grad.stride() == param.stride(), name
