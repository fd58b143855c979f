import math

import pytest
import torch
import torch.nn.functional as F

from asrkit.models.feed_forward import FeedForward
from asrkit.models.mask import padding_mask
from asrkit.models.moe import MoEFeedForward
from asrkit.models.moe_losses import (
    balance_losses,
    expert_load,
    importance_loss,
    sparsity_loss,
    switch_loss,
)

D, H = 8, 16


def moe(num_experts=4, top_k=1, **kwargs) -> MoEFeedForward:
    torch.manual_seed(0)
    layer = MoEFeedForward(D, H, num_experts, top_k, dropout=0.0, **kwargs)
    with torch.no_grad():  # a router sharp enough to use several experts
        layer.router.weight.mul_(5.0)
    return layer


def frames(lengths, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), D, generator=gen)
    return x, padding_mask(torch.tensor(lengths), max(lengths))


def naive(layer: MoEFeedForward, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Frame by frame: sum over the top-k experts of p_e * FFN_e(x_t); zero on padding."""
    out = torch.zeros_like(x)
    for b in range(x.size(0)):
        for t in range(x.size(1)):
            if not mask[b, t]:
                continue
            p = F.softmax(layer.router(x[b, t]), dim=-1)
            for e in p.topk(layer.top_k).indices.tolist():
                out[b, t] += p[e] * layer.experts[e](x[b, t])
    return out


@pytest.mark.parametrize("top_k", [1, 2])
def test_top_k_routing_scales_by_router_probability(top_k):
    layer = moe(top_k=top_k)
    x, mask = frames([7, 4])
    with torch.no_grad():
        y, routing = layer(x, mask)
        torch.testing.assert_close(y, naive(layer, x, mask), atol=1e-6, rtol=1e-5)
    assert routing.expert_index.shape == (2, 7, top_k)
    assert len(set(routing.expert_index[mask][:, 0].tolist())) > 1, "several experts used"


def test_padded_frames_take_no_expert():
    layer = moe(num_experts=3, top_k=2)
    rows_seen = []
    for expert in layer.experts:
        expert.register_forward_hook(lambda m, inp, out: rows_seen.append(inp[0].size(0)))
    x, mask = frames([6, 2, 4])
    x = torch.where(mask.unsqueeze(-1), x, torch.full_like(x, 1e4))  # loud padding
    y, routing = layer(x, mask)
    assert sum(rows_seen) == int(mask.sum()) * 2  # every valid frame, k times, nothing else
    assert torch.all(y[~mask] == 0)
    assert expert_load(routing.expert_index, mask, 3).sum() == pytest.approx(1.0)
    # the balance losses see only valid frames: same values whatever the padding holds
    x2 = torch.where(mask.unsqueeze(-1), x, -x)
    _, routing2 = layer(x2, mask)
    for loss in (lambda r: switch_loss(r.probs, r.expert_index, r.mask),
                 lambda r: sparsity_loss(r.probs, r.mask),
                 lambda r: importance_loss(r.probs, r.mask)):
        torch.testing.assert_close(loss(routing), loss(routing2))


def test_gradients_reach_router_and_every_selected_expert():
    layer = moe(num_experts=6, top_k=1)
    x, mask = frames([3, 2])
    y, routing = layer(x, mask)
    y.pow(2).sum().backward()
    assert layer.router.weight.grad.abs().sum() > 0
    chosen = set(routing.expert_index[mask].flatten().tolist())
    assert len(chosen) < 6, "some expert is idle in this tiny batch"
    for e, expert in enumerate(layer.experts):
        grads = [p.grad for p in expert.parameters()]
        assert all(g is not None for g in grads), "idle experts stay in the graph (DDP)"
        used = any(g.abs().sum() > 0 for g in grads)
        assert used == (e in chosen), e


def test_one_expert_equals_the_dense_ffn():
    torch.manual_seed(3)
    dense = FeedForward(D, H, dropout=0.0, activation="swish")
    layer = MoEFeedForward(D, H, num_experts=1, top_k=1, dropout=0.0)
    layer.experts[0].load_state_dict(dense.state_dict())
    x, mask = frames([5, 5])
    y, _ = layer(x, mask)
    torch.testing.assert_close(y, dense(x))


def test_router_sees_the_shared_embedding():
    layer = moe(router_extra_dim=3)
    assert layer.router.in_features == D + 3
    x, mask = frames([4])
    extra = torch.randn(1, 4, 3)
    a = layer.route(x, mask, extra).probs
    b = layer.route(x, mask, extra + 1.0).probs
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="router_extra"):
        layer(x, mask)


def test_invalid_options():
    with pytest.raises(ValueError, match="top_k"):
        MoEFeedForward(D, H, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="num_experts"):
        MoEFeedForward(D, H, num_experts=0)


# ---- balance losses ------------------------------------------------------------------------

def test_switch_loss_equals_alpha_under_uniform_routing():
    n = 4
    probs = torch.full((2, 8, n), 1.0 / n)
    index = (torch.arange(16) % n).view(2, 8, 1)  # each expert gets a quarter of the frames
    mask = torch.ones(2, 8, dtype=torch.bool)
    assert float(switch_loss(probs, index, mask, alpha=0.01)) == pytest.approx(0.01)
    # all frames to one expert that holds all the probability: alpha * N
    collapsed = F.one_hot(torch.zeros(2, 8, dtype=torch.long), n).float()
    assert float(switch_loss(collapsed, torch.zeros(2, 8, 1, dtype=torch.long), mask,
                             alpha=0.01)) == pytest.approx(0.04)


def test_losses_against_hand_computation():
    probs = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.25, 0.25],
                           [0.9, 0.05, 0.05]]])  # last frame is padding
    mask = torch.tensor([[True, True, True, False]])
    index = probs.argmax(-1, keepdim=True)  # experts 0, 1, 0 (padding: 0)
    valid = probs[0, :3]
    f = torch.tensor([2 / 3, 1 / 3, 0.0])
    big_p = valid.mean(0)
    assert float(switch_loss(probs, index, mask)) == pytest.approx(3 * float((f * big_p).sum()))
    hand_sparsity = sum(float(row.sum() / row.norm()) for row in valid) / 3
    assert float(sparsity_loss(probs, mask)) == pytest.approx(hand_sparsity)
    assert float(importance_loss(probs, mask)) == pytest.approx(3 * float((big_p ** 2).sum()))
    # SpeechMoE's extremes: one-hot frames -> L_s = 1; uniform -> sqrt(N); balance -> L_m = 1
    one_hot = F.one_hot(torch.tensor([[0, 1, 2]]), 3).float()
    full = torch.ones(1, 3, dtype=torch.bool)
    assert float(sparsity_loss(one_hot, full)) == pytest.approx(1.0)
    assert float(importance_loss(one_hot, full)) == pytest.approx(1.0)
    assert float(sparsity_loss(torch.full((1, 3, 3), 1 / 3), full)) == pytest.approx(math.sqrt(3))


def test_balance_losses_average_over_layers_and_log_loads():
    layer = moe(num_experts=3)
    x, mask = frames([5, 3])
    routings = [layer(x, mask)[1], layer(x * 2, mask)[1]]
    weighted, terms = balance_losses(routings, switch_weight=0.01, sparsity_weight=0.15,
                                     importance_weight=0.15)
    switch = sum(float(switch_loss(r.probs.detach(), r.expert_index, r.mask))
                 for r in routings) / 2
    assert float(terms["loss_moe_switch"]) == pytest.approx(switch)
    expected = (0.01 * terms["loss_moe_switch"] + 0.15 * terms["loss_moe_sparsity"]
                + 0.15 * terms["loss_moe_importance"])
    torch.testing.assert_close(weighted, expected)
    loads = [float(terms[f"moe_load_expert{i}"]) for i in range(3)]
    assert sum(loads) == pytest.approx(1.0)
    assert 1 / 3 <= float(terms["moe_max_load"]) <= 1.0
    assert weighted.requires_grad
