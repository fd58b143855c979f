"""Whether a device computes in bf16 natively, for training's and decoding's ``precision=auto``.

On a CPU, AMX-BF16 or AVX512-BF16 (``/proc/cpuinfo`` flags ``amx_bf16`` / ``avx512_bf16``,
else torch's own CPU probe) run bf16 matrix products at about twice the fp32 rate; without
them torch emulates bf16 and is slower than fp32. A CUDA GPU of the Ampere generation or
newer has bf16 tensor cores (``torch.cuda.is_bf16_supported``).
"""

from __future__ import annotations

from pathlib import Path

import torch

# /proc/cpuinfo flag -> the name the logs use, best first
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


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
