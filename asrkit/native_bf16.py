"""Whether a device computes in bf16 natively, for training's and decoding's
``precision=auto``, and the dtypes their precision names stand for.

On a CPU, AMX-BF16 or AVX512-BF16 (``/proc/cpuinfo`` flags ``amx_bf16`` / ``avx512_bf16``,
else torch's own CPU probe) run bf16 matrix products at about twice the fp32 rate; without
them torch emulates bf16 and is slower than fp32. A CUDA GPU of compute capability 8.0 or
newer (Ampere on) has bf16 tensor cores; ``torch.cuda.is_bf16_supported()`` also says True
for older GPUs, where bf16 is emulated, so it is not what decides here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# /proc/cpuinfo flag -> the name the logs use, best first
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def autocast(name: str, device_type: str) -> contextlib.AbstractContextManager:
    """The autocast a precision name stands for on a device type (fp32: none)."""
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=PRECISION_DTYPES[name])


def cpu_native_bf16(cpuinfo: str | None = None) -> str | None:
    """"AMX-BF16" or "AVX512-BF16" if this CPU computes bf16 natively, else None.

    ``cpuinfo``: the text of /proc/cpuinfo (read when None; the tests pass a fake one).
    Without a readable /proc/cpuinfo (not Linux), torch's CPU feature probe decides."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return _torch_cpu_bf16()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return next((name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags), None)


def _torch_cpu_bf16() -> str | None:
    probe = torch.cpu
    if getattr(probe, "_is_amx_tile_supported", lambda: False)():
        return "AMX-BF16"
    if getattr(probe, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None


def cuda_native_bf16(device: torch.device | str) -> bool:
    """Whether the CUDA GPU ``device`` has bf16 tensor cores (compute capability >= 8.0)."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def native_bf16(device: torch.device, cpuinfo: str | None = None) -> tuple[bool, str]:
    """(whether ``device`` computes bf16 natively, why, in a few words for a log line);
    ``cpuinfo`` as in cpu_native_bf16."""
    if device.type == "cuda":
        if cuda_native_bf16(device):
            return True, "the GPU supports bf16"
        return False, "the GPU has no native bf16 (compute capability below 8.0)"
    if device.type != "cpu":
        return False, f"{device.type} device"
    name = cpu_native_bf16(cpuinfo)
    return (True, f"CPU has {name}") if name else (False, "no native bf16 on this CPU")


def slower_than_fp32(option: str, name: str, device: torch.device,
                     cpuinfo: str | None = None) -> str | None:
    """The warning for precision ``name`` asked for explicitly (``option``, e.g.
    ``trainer.precision``) where autocast is usually slower than fp32: fp16 on a CPU, bf16
    on a CPU without native bf16; else None."""
    if device.type != "cpu":
        return None
    if name == "fp16":
        return (f"{option}=fp16 on the CPU: autocast works but is usually slower than fp32, "
                "and training a convolutional front end far slower (PyTorch's CPU fp16 "
                "convolution backward is over 100x bf16's); bf16 or fp32 are the CPU's choices")
    if name == "bf16" and cpu_native_bf16(cpuinfo) is None:
        return (f"{option}=bf16 on a CPU without native bf16: autocast works but is usually "
                "slower than fp32")
    return None
