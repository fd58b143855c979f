import pytest
import torch
import torch.nn.functional as F

from asrkit.models.dropout import keep_mask
from asrkit.models.feed_forward import FeedForward, build_activation

F_ACTIVATIONS = {"swish": F.silu, "relu": F.relu, "gelu": F.gelu}


@pytest.mark.parametrize("activation", ["swish", "relu", "gelu"])
def test_matches_linear_activation_linear_in_torch_ops(activation):
    # Linear(d, ffn) -> activation -> Linear(ffn, d): swish in the Conformer, ReLU in Vaswani
    torch.manual_seed(0)
    ffn = FeedForward(6, 24, dropout=0.0, activation=activation).eval()
    x = torch.randn(2, 5, 6)  # (batch, time, dim)
    hidden = F_ACTIVATIONS[activation](F.linear(x, ffn.w_1.weight, ffn.w_1.bias))
    expected = F.linear(hidden, ffn.w_2.weight, ffn.w_2.bias)
    with torch.no_grad():
        torch.testing.assert_close(ffn(x), expected)


def test_activations_differ_on_this_input():
    # guards the test above: on negative inputs the three activations give different values
    x = torch.linspace(-3, 3, 13)
    outs = [build_activation(name)(x) for name in F_ACTIVATIONS]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="'tanhh'"):
        FeedForward(4, 8, activation="tanhh")


def _grads(module, loss):
    module.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in module.named_parameters()}


def test_training_dropout_is_folded_into_w2_same_output_and_gradients():
    """w_2(mask * h / (1-p)) computed as (w_2 / (1-p))(mask * h): the same numbers and the
    same parameter gradients as the plain formula with the same mask."""
    torch.manual_seed(0)
    ffn = FeedForward(6, 24, dropout=0.25, activation="swish").train()
    x = torch.randn(3, 5, 6)  # (batch, time, dim)
    torch.manual_seed(7)
    keep, scale = keep_mask((3, 5, 24), 0.25)
    torch.manual_seed(7)
    out = ffn(x)
    ours = _grads(ffn, (out * torch.linspace(-1, 1, 6)).sum())
    hidden = F.silu(F.linear(x, ffn.w_1.weight, ffn.w_1.bias))
    expected = F.linear(hidden * keep * scale, ffn.w_2.weight, ffn.w_2.bias)
    reference = _grads(ffn, (expected * torch.linspace(-1, 1, 6)).sum())
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name], atol=1e-5, rtol=1e-5)


def test_gradients_match_torch_ops_without_dropout():
    torch.manual_seed(1)
    ffn = FeedForward(6, 24, dropout=0.0, activation="relu").train()
    x = torch.randn(2, 4, 6, requires_grad=True)
    ours = _grads(ffn, ffn(x).pow(2).sum())
    grad_x = x.grad.clone()
    x.grad = None
    hidden = F.relu(F.linear(x, ffn.w_1.weight, ffn.w_1.bias))
    reference = _grads(ffn, F.linear(hidden, ffn.w_2.weight, ffn.w_2.bias).pow(2).sum())
    torch.testing.assert_close(x.grad, grad_x)
    for name in reference:
        torch.testing.assert_close(ours[name], reference[name])
