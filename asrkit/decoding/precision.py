"""Numeric precision of decoding (``asrkit decode precision=...``, ``asrkit transcribe
--precision ...``): fp32 (the default), or the encoder and the searches' network passes under
bf16 / fp16 autocast.

Under autocast the matrix products and attention run in the low precision; every
log-softmax is taken in fp32 (the CTC head, decoder, joiner and rescoring cast their logits
first), so the searches add up fp32 scores. Features are computed outside autocast, in fp32.
Parameters stay fp32: the model is not converted.

``auto`` picks bf16 where the device computes it natively (a CPU with AMX-BF16 or
AVX512-BF16, a CUDA GPU of the Ampere generation or newer; asrkit.native_bf16) and fp32
elsewhere, never fp16. fp32 is the default, as in ESPnet's and WeNet's decoding, so that
decodes stay comparable across machines; a non-fp32 decode writes its results under
``<method>-...-precision<name>/``, beside the fp32 ones. What bf16 costs in WER and gains
in speed on the synth recipe is in recipes/synth/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from asrkit.native_bf16 import PRECISION_DTYPES, cpu_native_bf16, cuda_native_bf16

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass(frozen=True)
class DecodePrecision:
    name: str         # fp32 | bf16 | fp16
    device_type: str  # cpu | cuda
    reason: str = ""  # why ``auto`` chose it (empty when asked for explicitly)

    @classmethod
    def resolve(cls, requested: str, device: str | torch.device,
                cpuinfo: str | None = None) -> DecodePrecision:
        """What ``requested`` (fp32 | bf16 | fp16 | auto) means on ``device``, with a warning
        where it is likely slower than fp32; ``cpuinfo``: a /proc/cpuinfo text for the tests."""
        check_precision(requested)
        device = torch.device(device)
        if requested != "auto":
            if device.type == "cpu" and requested == "fp16":
                log.warning("precision=fp16 on the CPU: autocast works but is usually slower "
                            "than fp32")
            elif (device.type == "cpu" and requested == "bf16"
                  and cpu_native_bf16(cpuinfo) is None):
                log.warning("precision=bf16 on a CPU without native bf16: autocast works but "
                            "is usually slower than fp32")
            return cls(requested, device.type)
        name, reason = _auto(device, cpuinfo)
        log.info("decoding precision %s: %s", name, reason)
        return cls(name, device.type, reason)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=PRECISION_DTYPES[self.name])

    def settings(self) -> dict[str, str]:
        """The part of a result directory's name: nothing for fp32."""
        return {} if self.name == "fp32" else {"precision": self.name}


FP32 = DecodePrecision("fp32", "cpu")


def check_precision(requested: str) -> None:
    """A one-line error for a precision that is not one of PRECISIONS."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}, got {requested!r}")


def _auto(device: torch.device, cpuinfo: str | None) -> tuple[str, str]:
    if device.type == "cuda":
        if cuda_native_bf16(device):
            return "bf16", "the GPU supports bf16"
        return "fp32", "the GPU has no native bf16 (compute capability below 8.0)"
    if device.type != "cpu":
        return "fp32", f"{device.type} device"
    native = cpu_native_bf16(cpuinfo)
    if native is None:
        return "fp32", "no native bf16 on this CPU"
    return "bf16", f"CPU has {native}"
