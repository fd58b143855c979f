import pytest
import torch

from asrkit.models.transducer.lstm_prediction import LSTMPredictionNetwork
from asrkit.models.transducer.stateless_prediction import StatelessPredictionNetwork

BLANK = 0


def _tokens(batch: int, length: int, vocab: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (batch, length), generator=gen)


@pytest.mark.parametrize("context_size,groups", [(2, 2), (3, 4), (2, 8)])
def test_stateless_output_is_the_grouped_conv_over_the_last_labels(context_size, groups):
    torch.manual_seed(0)
    net = StatelessPredictionNetwork(9, 8, context_size, groups=groups)
    tokens = _tokens(2, 5, 9, seed=1)
    out = net(tokens)  # (B, U + 1, E)
    emb, weight = net.embed.weight, net.conv.weight  # (V, E), (E, E / groups, c)
    per_group = 8 // groups
    for b in range(2):
        history = [BLANK] * context_size + tokens[b].tolist()  # start symbol + left padding
        for u in range(6):
            window = history[u: u + context_size]  # the last c labels at position u
            expected = torch.zeros(8)
            for o in range(8):
                g = o // per_group
                for k, label in enumerate(window):
                    for i in range(per_group):
                        expected[o] += weight[o, i, k] * emb[label, g * per_group + i]
            torch.testing.assert_close(out[b, u], expected.relu(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dim,groups", [(256, 64), (250, 50), (90, 18), (18, 3), (7, 1), (2, 1)])
def test_any_prediction_dim_builds_with_groups_of_at_least_4_channels(dim, groups):
    net = StatelessPredictionNetwork(9, dim, context_size=2)
    assert net.conv.groups == groups and net(_tokens(2, 3, 9, seed=0)).shape == (2, 4, dim)


@pytest.mark.parametrize("context_size", [1, 2, 3])
def test_stateless_position_depends_on_the_last_context_size_labels_only(context_size):
    torch.manual_seed(0)
    net = StatelessPredictionNetwork(7, 8, context_size)
    tokens = _tokens(1, 6, 7, seed=2)
    out = net(tokens)[0]
    for j in range(6):  # change label y_{j+1}: positions u > j see it while u - c < j + 1
        changed = tokens.clone()
        changed[0, j] = 1 + changed[0, j] % 6
        diff = (net(changed)[0] - out).abs().amax(-1)  # (U + 1,)
        for u in range(7):
            sees = j + 1 <= u <= j + context_size
            assert bool(diff[u] > 0) == sees, (j, u)


def test_stateless_context_one_is_the_bigram_network():
    torch.manual_seed(0)
    net = StatelessPredictionNetwork(6, 4, context_size=1)
    tokens = _tokens(2, 3, 6, seed=3)
    last = torch.cat([torch.zeros(2, 1, dtype=torch.long), tokens], dim=1)
    torch.testing.assert_close(net(tokens), net.embed.weight[last].relu())


def _lstm_reference(net: LSTMPredictionNetwork, tokens: torch.Tensor) -> torch.Tensor:
    """The LSTM equations (i, f, g, o gates) written out, one layer."""
    lstm = net.lstm
    x = net.embed(torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1))
    h = torch.zeros(tokens.size(0), net.hidden_size)
    c = torch.zeros_like(h)
    outs = []
    for step in range(x.size(1)):
        gates = x[:, step] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.T \
            + lstm.bias_hh_l0
        i, f, g, o = gates.chunk(4, dim=-1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        outs.append(h)
    return torch.stack(outs, dim=1)


def test_lstm_output_follows_the_lstm_equations_after_a_blank_start():
    torch.manual_seed(0)
    net = LSTMPredictionNetwork(7, 6, embedding_dim=5).eval()
    tokens = _tokens(3, 4, 7, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(net(tokens), _lstm_reference(net, tokens), atol=1e-5,
                                   rtol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: StatelessPredictionNetwork(8, 6, context_size=2, groups=3),
    lambda: StatelessPredictionNetwork(8, 6, context_size=3, groups=1),
    lambda: StatelessPredictionNetwork(8, 6, context_size=1),
    lambda: LSTMPredictionNetwork(8, 6, num_layers=1),
    lambda: LSTMPredictionNetwork(8, 6, num_layers=2, embedding_dim=4),
])
def test_step_by_step_equals_the_full_sequence_forward(make):
    torch.manual_seed(0)
    net = make().eval()
    tokens = _tokens(3, 5, 8, seed=5)
    with torch.no_grad():
        full = net(tokens)  # (B, U + 1, P)
        state = net.initial_state(3, torch.device("cpu"))
        previous = torch.full((3,), BLANK)
        for u in range(6):
            out, state = net.step(previous, state)
            assert all(s.size(0) == 3 for s in state), "states are hypothesis-first"
            torch.testing.assert_close(out, full[:, u], atol=1e-6, rtol=1e-5)
            if u < 5:
                previous = tokens[:, u]


def test_stateless_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match="embedding_dim 6 is not divisible by groups 4"):
        StatelessPredictionNetwork(8, 6, groups=4)
    with pytest.raises(ValueError, match="context_size"):
        StatelessPredictionNetwork(8, 6, context_size=0)
