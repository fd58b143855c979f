"""asrkit.models.linear: the oneDNN path computes F.linear's outputs and gradients, is taken
exactly where its docstring says, and Linear is a drop-in nn.Linear."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asrkit.models import linear as linear_module
from asrkit.models.linear import (
    ONEDNN_MIN_MACS,
    ONEDNN_MIN_ROWS,
    Linear,
    OneDnnLinear,
    linear,
    onednn_faster_than_mkl,
    uses_onednn,
)
from tests.conftest import intra_op_threads

DETECTED = linear_module.ONEDNN_LINEAR  # this machine's value, before any test switches it


@pytest.fixture(autouse=True)
def two_threads_and_the_path_on(monkeypatch):
    """The path needs more than one torch thread (see the module docstring); it is switched
    on whatever this machine's CPU, so that it is tested on Intel machines too."""
    monkeypatch.setattr(linear_module, "ONEDNN_LINEAR", True)
    with intra_op_threads(2):
        yield


def test_taken_on_amd_cpus_only(monkeypatch):
    amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
    intel = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
    assert onednn_faster_than_mkl(amd)
    assert not onednn_faster_than_mkl(intel)
    assert not onednn_faster_than_mkl("")  # no /proc/cpuinfo
    assert DETECTED == onednn_faster_than_mkl(linear_module._this_cpu_info())
    x, w = torch.randn(ONEDNN_MIN_ROWS, 2048), torch.randn(2048, 2048)
    assert uses_onednn(x, w)
    monkeypatch.setattr(linear_module, "ONEDNN_LINEAR", False)
    assert not uses_onednn(x, w)


@pytest.fixture
def count_onednn(monkeypatch):
    calls = []
    apply = OneDnnLinear.apply

    def counting_apply(*args):
        calls.append(args[0].shape)
        return apply(*args)

    monkeypatch.setattr(OneDnnLinear, "apply", counting_apply)
    return calls


def grads_of(fn, x, weight, bias, grad):
    for t in (x, weight, bias):
        if t is not None:
            t.grad = None
    y = fn(x, weight, bias)
    y.backward(grad)
    return y.detach(), [None if t is None else t.grad.clone() for t in (x, weight, bias)]


@pytest.mark.parametrize("shape,out_dim,with_bias", [
    ((4, 300, 256), 512, True),     # 1200 rows x 256 -> 512: oneDNN
    ((1200, 256), 768, False),      # 2-D, no bias
    ((1200, 512), 512, True),       # square: a transposed weight gradient would pass shapes
    ((2, 3, 200, 256), 576, True),  # 4-D: 1200 rows
])
def test_onednn_path_matches_f_linear(shape, out_dim, with_bias, count_onednn):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    weight = torch.randn(out_dim, shape[-1], requires_grad=True)
    bias = torch.randn(out_dim, requires_grad=True) if with_bias else None
    grad = torch.randn(*shape[:-1], out_dim)
    y, grads = grads_of(linear, x, weight, bias, grad)
    assert len(count_onednn) == 1  # the oneDNN path really ran
    y_ref, grads_ref = grads_of(F.linear, x, weight, bias, grad)
    assert y.shape == y_ref.shape == (*shape[:-1], out_dim)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-4)
    for got, ref in zip(grads, grads_ref):
        if ref is not None:
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-3)


def test_non_contiguous_input_and_scaled_weight(count_onednn):
    """A transposed input and a weight computed from a parameter (the feed-forward layer's
    dropout scale): the gradient reaches the parameter through autograd."""
    torch.manual_seed(1)
    base = torch.randn(256, 1100, requires_grad=True)
    param = torch.randn(1024, 256, requires_grad=True)
    grad = torch.randn(1100, 1024)

    def run(fn):
        base.grad = param.grad = None
        y = fn(base.t(), param * 1.25, None)
        y.backward(grad)
        return y.detach(), base.grad.clone(), param.grad.clone()

    got, ref = run(linear), run(F.linear)
    assert len(count_onednn) == 1
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)


def test_only_the_weight_needs_a_gradient(count_onednn):
    x = torch.randn(1100, 256)
    weight = torch.randn(1024, 256, requires_grad=True)
    grad = torch.randn(1100, 1024)
    linear(x, weight).backward(grad)
    assert len(count_onednn) == 1
    torch.testing.assert_close(weight.grad, grad.t() @ x, rtol=1e-5, atol=1e-3)


def test_where_the_path_is_taken():
    rows, k = ONEDNN_MIN_ROWS, 256
    n = -(-ONEDNN_MIN_MACS // (rows * k))  # just enough multiply-adds
    x, w = torch.randn(rows, k), torch.randn(n, k)
    assert uses_onednn(x, w)
    assert not uses_onednn(x[:-1], w)  # one row too few
    assert not uses_onednn(x, w[:-1])  # too few multiply-adds
    assert not uses_onednn(x.double(), w.double())
    assert not uses_onednn(x.bfloat16(), w.bfloat16())
    assert not uses_onednn(torch.randn(k), w)  # a single vector
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_onednn(x, w)
        assert linear(x, w).dtype == torch.bfloat16  # F.linear under autocast
    with torch.backends.mkldnn.flags(enabled=False):
        assert not uses_onednn(x, w)
    torch.set_num_threads(1)  # torch would not run the 1x1 convolution in oneDNN
    assert not uses_onednn(x, w)


def test_products_run_in_onednn():
    """The convolutions are dispatched to oneDNN (mkldnn), forward and backward."""
    x = torch.randn(1100, 256, requires_grad=True)
    w = torch.randn(1024, 256, requires_grad=True)
    with torch.profiler.profile() as prof:
        linear(x, w).sum().backward()
    ops = {event.key for event in prof.key_averages()}
    assert {"aten::mkldnn_convolution", "aten::convolution_backward"} <= ops
    assert "aten::_slow_conv2d_forward" not in ops and "aten::thnn_conv2d" not in ops


def test_frozen_weight_inference_mode_and_double_backward(count_onednn):
    torch.manual_seed(3)
    x = torch.randn(1100, 512, requires_grad=True)
    w = torch.randn(512, 512)  # frozen: only the input's gradient
    b = torch.randn(512)
    grad = torch.randn(1100, 512)
    (gx,) = torch.autograd.grad(linear(x, w, b), x, grad)
    torch.testing.assert_close(gx, grad @ w, rtol=1e-5, atol=1e-3)
    with torch.inference_mode():
        torch.testing.assert_close(linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-4)
    w.requires_grad_(True)

    def penalty_grads(fn):  # a gradient penalty: the backward differentiated again
        gx, gw = torch.autograd.grad(fn(x, w, b).pow(2).sum(), (x, w), create_graph=True)
        return torch.autograd.grad(gx.pow(2).sum() + gw.pow(2).sum(), (x, w))

    got = penalty_grads(linear)
    assert len(count_onednn) == 3
    for a, ref in zip(got, penalty_grads(F.linear)):
        torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_torch_func_falls_back_to_f_linear(count_onednn):
    x, w = torch.randn(1100, 256), torch.randn(1024, 256)
    grad_w = torch.func.grad(lambda weight: linear(x, weight).sum())(w)
    torch.testing.assert_close(grad_w, x.sum(0).expand(1024, 256), rtol=1e-5, atol=1e-3)
    assert count_onednn == []


def test_small_products_use_f_linear(count_onednn):
    x, w = torch.randn(8, 100, 256), torch.randn(512, 256)  # 800 rows
    torch.testing.assert_close(linear(x, w), F.linear(x, w), rtol=0, atol=0)
    assert count_onednn == []


def test_tracing_records_f_linear():
    module = Linear(256, 1024).eval()
    x = torch.randn(1100, 256)
    traced = torch.jit.trace(module, x)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::linear" in kinds and "aten::_convolution" not in kinds
    torch.testing.assert_close(traced(x), module(x), rtol=1e-5, atol=1e-4)


def test_linear_module_is_a_drop_in_nn_linear():
    reference = nn.Linear(256, 1024)
    module = Linear(256, 1024)
    module.load_state_dict(reference.state_dict())
    assert isinstance(module, nn.Linear)
    assert list(module.state_dict()) == ["weight", "bias"]
    x = torch.randn(3, 400, 256)
    with torch.no_grad():
        torch.testing.assert_close(module(x), reference(x), rtol=1e-5, atol=1e-4)
    assert uses_onednn(x, module.weight)


def test_conformer_training_step_equals_f_linear(count_onednn, monkeypatch):
    """The whole model (Conformer + CTC + attention decoder, dropout on): loss and every
    parameter's gradient are F.linear's with the oneDNN path on (1,096 encoder rows)."""
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model

    config = compose_train_config([
        "+experiment=aishell/conformer", "vocab_size=50", "encoder.num_layers=2",
        "encoder.ffn_dim=1024", "decoder.num_layers=1", "decoder.ffn_dim=1024"])
    torch.manual_seed(0)
    model = build_model(config).train()
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(4, 1103, 80, generator=gen)  # 4 x 274 encoder frames
    lens = torch.tensor([1103, 1000, 900, 1103])
    tokens = torch.randint(3, 50, (4, 12), generator=gen)
    token_lens = torch.tensor([12, 10, 12, 8])

    def loss_and_grads():
        model.zero_grad()
        torch.manual_seed(2)  # the same dropout masks in both runs
        loss = model(feats, lens, tokens, token_lens)["loss"]
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss, grads = loss_and_grads()
    assert len(count_onednn) >= 2 * 6  # the encoder's feed-forward, attention, conv layers
    monkeypatch.setattr(linear_module, "ONEDNN_MIN_ROWS", 1 << 62)  # F.linear everywhere
    calls = len(count_onednn)
    loss_ref, grads_ref = loss_and_grads()
    assert len(count_onednn) == calls
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    # per parameter, within 1e-4 of its largest gradient; the key projections' biases and
    # the bias before BatchNorm have gradient 0 in exact arithmetic (rounding noise only):
    # those are held to 1e-6 of the model's largest gradient
    largest = max(grad.abs().max() for grad in grads_ref.values())
    for name, grad in grads_ref.items():
        error = (grads[name] - grad).abs().max()
        assert error <= 1e-4 * grad.abs().max() + 1e-6 * largest, name
