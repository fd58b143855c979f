"""Numeric precision of the training step: fp32, bf16 autocast, or fp16 autocast with loss
scaling (Micikevicius et al. 2018).

``trainer.precision=auto`` picks bf16 on a CUDA device that supports it (Ampere or newer),
fp16 on older GPUs. On a CPU that computes in bf16 natively (AMX-BF16 or AVX512-BF16, as
asrkit.native_bf16 finds them) it picks bf16 autocast, fp32 on other CPUs, where bf16 is
emulated and slower. The log says which was chosen and why (``precision bf16: CPU has
AMX-BF16``).

Why bf16 on such CPUs: the AISHELL Conformer step is 1.6x (Intel AMX) to 1.9x (AMD
AVX512-BF16) faster than in fp32, and the synth recipe trained in bf16 gives the same WER
as in fp32 within run-to-run noise (recipes/synth/RESULTS.md, paired bootstrap). The small
synth model itself trains at the same speed either way on the AMD CPU.
``CPU_BF16_BY_DEFAULT = False`` restores fp32 as the CPU default.

bf16 and fp16 can always be asked for explicitly, also on a CPU (torch's CPU autocast and
``GradScaler("cpu")``), which is how the tests exercise the GPU code path. Under autocast,
matrix products and attention run in the low precision while losses, softmax and
normalisation stay in fp32 (torch's autocast op lists); parameters, gradients and
optimiser states are always fp32. bf16 has fp32's exponent range and needs no
loss scaling; fp16 uses ``torch.amp.GradScaler``, which skips updates whose gradients
overflow and adapts the scale.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from asrkit.native_bf16 import PRECISION_DTYPES, autocast, native_bf16, slower_than_fp32

log = logging.getLogger(__name__)

# The switch: True makes trainer.precision=auto choose bf16 on CPUs with native bf16.
CPU_BF16_BY_DEFAULT = True


@dataclass
class Precision:
    name: str  # fp32 | bf16 | fp16
    device_type: str  # cpu | cuda
    scaler: torch.amp.GradScaler | None = None
    reason: str = ""  # why ``auto`` chose it (empty when asked for explicitly)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.name, self.device_type)


def auto_precision(device: torch.device, cpuinfo: str | None = None,
                   cpu_bf16_by_default: bool | None = None) -> tuple[str, str]:
    """(precision, reason) that ``trainer.precision=auto`` means on ``device``."""
    native, why = native_bf16(device, cpuinfo)
    if device.type == "cuda":  # fp16 with loss scaling where bf16 is emulated
        return ("bf16" if native else "fp16"), why
    enabled = CPU_BF16_BY_DEFAULT if cpu_bf16_by_default is None else cpu_bf16_by_default
    if native and not enabled:
        return "fp32", (f"{why}, but bf16 is not the CPU default yet "
                        "(asrkit.training.precision.CPU_BF16_BY_DEFAULT)")
    return ("bf16" if native else "fp32"), why


def resolve_precision(requested: str, device: torch.device, cpuinfo: str | None = None,
                      cpu_bf16_by_default: bool | None = None) -> Precision:
    """The precision ``trainer.precision`` means on ``device``; ``cpuinfo`` and
    ``cpu_bf16_by_default`` override /proc/cpuinfo and CPU_BF16_BY_DEFAULT (for tests)."""
    if requested not in ("auto", *PRECISION_DTYPES):
        raise ValueError(f"trainer.precision must be auto, fp32, bf16 or fp16, got {requested!r}")
    name, reason = requested, ""
    if requested == "auto":
        name, reason = auto_precision(device, cpuinfo, cpu_bf16_by_default)
        log.info("precision %s: %s", name, reason)
    elif warning := slower_than_fp32("trainer.precision", name, device, cpuinfo):
        log.warning(warning)
    scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
    return Precision(name, device.type, scaler, reason)
