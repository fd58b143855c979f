"""Numeric precision of the training step: fp32, bf16 autocast, or fp16 autocast with loss
scaling (Micikevicius et al. 2018).

``trainer.precision=auto`` picks bf16 on a CUDA device that supports it (Ampere or newer),
fp16 on older GPUs, and fp32 on the CPU. bf16 and fp16 also run on the CPU (torch's CPU
autocast and ``GradScaler("cpu")``), slower than fp32 there but the same code path as on a
GPU, which is how the tests exercise it. Under autocast, matrix products and attention run
in the low precision while losses, softmax and normalisation stay in fp32 (torch's autocast
op lists); parameters, gradients and optimiser states are always fp32. bf16 has fp32's
exponent range and needs no loss scaling; fp16 uses ``torch.amp.GradScaler``, which skips
updates whose gradients overflow and adapts the scale.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    device_type: str  # cpu | cuda
    scaler: torch.amp.GradScaler | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=DTYPES[self.name])


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """The precision ``trainer.precision`` means on ``device``."""
    if requested not in ("auto", *DTYPES):
        raise ValueError(f"trainer.precision must be auto, fp32, bf16 or fp16, got {requested!r}")
    name = requested
    if requested == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name in ("bf16", "fp16") and device.type == "cpu":
        log.warning("trainer.precision=%s on the CPU: autocast works but is usually slower "
                    "than fp32", name)
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(name, device.type, scaler)
