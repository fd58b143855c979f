import pytest
import torch
from torch import nn

from asrkit.training.optim import adam, adamw, build_optimizer, kernel_options


def model():
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_adamw_decays_matrices_only():
    net = model()
    opt = adamw(net, lr=1e-3, weight_decay=0.1)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {p.dim() for p in decayed["params"]} == {2}
    assert {p.dim() for p in plain["params"]} == {1}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(net.parameters()))


def _train(net, opt, steps=5):
    torch.manual_seed(1)
    for _ in range(steps):
        net(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("builder, plain", [
    (adam, lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.9, 0.98), eps=1e-9,
                                           foreach=False, fused=False)),
    (adamw, lambda params: torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=0.01, betas=(0.9, 0.98), eps=1e-9, foreach=False, fused=False)),
])
def test_fused_step_matches_the_plain_per_tensor_step(builder, plain):
    """On the CPU the builders use torch's fused kernel; five updates agree with torch's
    reference (per-tensor) implementation to float rounding."""
    torch.manual_seed(0)
    a, b = model(), model()
    b.load_state_dict(a.state_dict())
    kwargs = {"weight_decay": 0.1} if builder is adamw else {}
    ours = builder(a, lr=0.01, betas=(0.9, 0.98), eps=1e-9, **kwargs)
    assert all(group["fused"] for group in ours.param_groups)
    _train(a, ours)
    _train(b, plain(list(b.parameters())))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_kernel_choice_by_device():
    cpu = [torch.zeros(2, requires_grad=True)]
    assert kernel_options(cpu) == {"fused": True}
    assert kernel_options([torch.zeros(2, device="meta")]) == {}  # no fused kernel there
    assert kernel_options([]) == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "optim.lr: must be > 0, got 0.0"),
    ({"eps": -1.0}, "optim.eps: must be > 0, got -1.0"),
    ({"betas": [0.9, 1.0]}, "optim.betas: has an item that must be < 1, got 1.0"),
    ({"betas": [0.9]}, "optim.betas: must be two numbers in [0, 1), got [0.9]"),
    ({"weight_decay": -0.1}, "optim.weight_decay: must be >= 0, got -0.1"),
])
def test_bad_values_name_the_key(kwargs, message):
    """The signature's annotations are the optim section's schema (checked before building)."""
    cfg = {"_target_": "asrkit.training.optim.adam", "lr": 1e-3, "betas": [0.9, 0.98],
           "eps": 1e-9, "weight_decay": 0.0, **kwargs}
    with pytest.raises(ValueError) as error:
        build_optimizer(cfg, model())
    assert str(error.value) == message


def test_builder_from_config_section():
    cfg = {"_target_": "asrkit.training.optim.adamw", "lr": 0.002, "betas": [0.9, 0.98],
           "eps": 1e-9, "weight_decay": 0.01}
    opt = build_optimizer(cfg, model())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 0.002
    assert opt.defaults["betas"] == (0.9, 0.98)
