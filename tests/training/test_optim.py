import pytest
import torch
from torch import nn

from asrkit.training.optim import adam, adamw, build_optimizer


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


def test_adam_step_matches_torch():
    torch.manual_seed(0)
    a, b = model(), model()
    b.load_state_dict(a.state_dict())
    ours = adam(a, lr=0.01, betas=(0.9, 0.98), eps=1e-9)
    ref = torch.optim.Adam(b.parameters(), lr=0.01, betas=(0.9, 0.98), eps=1e-9)
    x = torch.randn(5, 4)
    for net, opt in ((a, ours), (b, ref)):
        net(x).pow(2).sum().backward()
        opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("kwargs, key", [({"lr": 0.0}, "optim.lr"), ({"eps": -1.0}, "optim.eps"),
                                         ({"betas": (0.9, 1.0)}, "optim.betas"),
                                         ({"weight_decay": -0.1}, "optim.weight_decay")])
def test_bad_values_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        adam(model(), **kwargs)


def test_builder_from_config_section():
    cfg = {"_target_": "asrkit.training.optim.adamw", "lr": 0.002, "betas": [0.9, 0.98],
           "eps": 1e-9, "weight_decay": 0.01}
    opt = build_optimizer(cfg, model())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 0.002
    assert opt.defaults["betas"] == (0.9, 0.98)
