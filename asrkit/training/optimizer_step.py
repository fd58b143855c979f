"""An optimiser step that is a no-op when the gradient norm is not finite, decided on the
device.

torch's fused optimiser kernels (Adam, AdamW, SGD with ``fused=True``; the ones
asrkit.training.optim builds on CUDA and on the CPU) take a ``found_inf`` tensor, the
mechanism ``torch.amp.GradScaler`` uses to skip an overflowing fp16 step: with
``found_inf = 1`` the kernel leaves the weights and the moments as they are and the step
count is put back, all on the device, so the host never waits for the norm. An optimiser
without that support (``_step_supports_amp_scaling``) is stepped only if the host reads the
norm as finite: one host-device synchronisation per update (that is what the trainer did
for every optimiser before).

    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    step_if_finite(optimizer, norm)

``clip_and_step`` does both. With the fused kernels it also hands them the clipping: they
take a ``grad_scale`` tensor (GradScaler's unscaling) and divide every gradient by it as
they read it, so the clipping factor rides in the step instead of a pass of its own over
the gradients (11 ms of a 1.7 s AISHELL Conformer fp32 step on 2 CPU cores; on a GPU one
kernel sweep fewer).
"""

from __future__ import annotations

import torch


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimiser's step reads ``optimizer.found_inf`` (torch's fused kernels)."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def step_if_finite(optimizer: torch.optim.Optimizer, norm: torch.Tensor) -> None:
    """``optimizer.step()`` when ``norm`` (0-d) is finite; otherwise nothing changes: not
    the parameters, not the optimiser's state, not its step count."""
    if not supports_found_inf(optimizer):
        if bool(torch.isfinite(norm)):  # the host reads the norm: a sync
            optimizer.step()
        return
    optimizer.found_inf = (~torch.isfinite(norm)).to(torch.float32)  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def clip_and_step(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                  max_norm: float | None) -> torch.Tensor:
    """Clip the gradients of ``params`` to a global 2-norm of ``max_norm`` (None: no
    clipping) and step, a no-op when the norm is not finite (``step_if_finite``); returns
    the norm before clipping (0-d, on the device, not read here). The update is
    ``clip_grad_norm_``'s: gradients times ``max_norm / (norm + 1e-6)`` where that is below
    1; with a fused optimiser the kernel divides by its inverse instead (the gradients
    themselves are left unclipped)."""
    if not supports_found_inf(optimizer):
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf"))
        step_if_finite(optimizer, norm)
        return norm
    norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if max_norm:  # the kernel divides by it: max_norm / (norm + 1e-6) where below 1
        scale = ((norm + 1e-6) / max_norm).clamp(min=1.0).to(torch.float32)
        optimizer.grad_scale = scale  # type: ignore[attr-defined]
    optimizer.found_inf = (~torch.isfinite(norm)).to(torch.float32)  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]
        if max_norm:
            del optimizer.grad_scale  # type: ignore[attr-defined]
    return norm
