"""An optimiser step skipped on the device when the gradient norm is not finite
(asrkit.training.optimizer_step): nothing changes, not the weights, the moments or the step
count, and the next step is the one the optimiser would have made without the skipped one."""

from __future__ import annotations

import pytest
import torch

from asrkit.training.optimizer_step import step_if_finite, supports_found_inf

OPTIMIZERS = {
    "adam-fused": lambda p: torch.optim.Adam(p, lr=0.1, fused=True),
    "adamw-fused": lambda p: torch.optim.AdamW(p, lr=0.1, weight_decay=0.1, fused=True),
    "sgd-fused": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, fused=True),
    "adam-for-loop": lambda p: torch.optim.Adam(p, lr=0.1, foreach=False),  # the host reads
}


def state_of(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [t.clone() for s in optimizer.state.values() for t in s.values()
            if torch.is_tensor(t)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_nonfinite_norm_makes_the_step_a_no_op(name):
    torch.manual_seed(0)
    weights = torch.randn(3, 4)
    skipping, plain = torch.nn.Parameter(weights.clone()), torch.nn.Parameter(weights.clone())
    opt, twin = OPTIMIZERS[name]([skipping]), OPTIMIZERS[name]([plain])
    assert supports_found_inf(opt) == name.endswith("fused")
    grads = [torch.randn(3, 4) for _ in range(2)]

    def step(optimizer, param, grad):
        param.grad = grad.clone()
        step_if_finite(optimizer, torch.linalg.vector_norm(param.grad))

    step(opt, skipping, grads[0])
    step(twin, plain, grads[0])
    before, moments = skipping.detach().clone(), state_of(opt)
    for bad in (float("nan"), float("inf")):
        step(opt, skipping, torch.full((3, 4), bad))
        assert torch.equal(skipping, before)
        assert all(torch.equal(a, b) for a, b in zip(state_of(opt), moments, strict=True))
    assert not hasattr(opt, "found_inf")
    step(opt, skipping, grads[1])
    step(twin, plain, grads[1])
    assert torch.equal(skipping, plain)
    assert all(torch.equal(a, b) for a, b in zip(state_of(opt), state_of(twin), strict=True))
