import pytest
import torch
import torch.nn.functional as F

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
