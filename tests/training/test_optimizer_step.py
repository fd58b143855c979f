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


@pytest.mark.parametrize("max_norm", [0.5, 100.0, None])  # clipping, not clipping, none
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_clip_and_step_is_clip_grad_norm_then_step(name, max_norm):
    """Three steps: weights, moments and returned norms as clip_grad_norm_ + step give them
    (the fused kernels take the clipping as their grad_scale: equal to fp32 rounding)."""
    from asrkit.training.optimizer_step import clip_and_step

    torch.manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt, twin = OPTIMIZERS[name](ours), OPTIMIZERS[name](ref)
    for _ in range(3):
        grads = [torch.randn(s) * 3 for s in shapes]
        for p, q, g in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        norm = clip_and_step(opt, ours, max_norm)
        expected = torch.nn.utils.clip_grad_norm_(ref, max_norm or float("inf"))
        twin.step()
        torch.testing.assert_close(norm, expected)
        if max_norm == 0.5:
            assert float(expected) > 0.5  # it did clip
        for p, q in zip(ours, ref, strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
        for a, b in zip(state_of(opt), state_of(twin), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")


def test_clip_and_step_skips_a_nonfinite_norm():
    from asrkit.training.optimizer_step import clip_and_step

    param = torch.nn.Parameter(torch.randn(3, 4))
    opt = OPTIMIZERS["adam-fused"]([param])
    param.grad = torch.randn(3, 4)
    clip_and_step(opt, [param], 1.0)
    before, moments = param.detach().clone(), state_of(opt)
    param.grad = torch.full((3, 4), float("nan"))
    assert not torch.isfinite(clip_and_step(opt, [param], 1.0))
    assert torch.equal(param, before)
    assert all(torch.equal(a, b) for a, b in zip(state_of(opt), moments, strict=True))
