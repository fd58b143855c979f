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
