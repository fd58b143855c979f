"""Numeric precision of decoding (``asrkit decode precision=...``, ``asrkit transcribe
--precision ...``): fp32 (the default), or the encoder and the searches' network passes under
bf16 / fp16 autocast.

Under autocast the matrix products and attention run in the low precision; every
log-softmax is taken in fp32 (the CTC head, decoder, joiner and rescoring cast their logits
first), so the searches add up fp32 scores. Features are computed outside autocast, in fp32.
Parameters stay fp32: the model is not converted.

``auto`` picks bf16 where the device computes it natively (a CPU with AMX-BF16 or
AVX512-BF16, a CUDA GPU of compute capability 8.0 or newer; asrkit.native_bf16) and fp32
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

from asrkit.native_bf16 import autocast, native_bf16, slower_than_fp32

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
            if warning := slower_than_fp32("precision", requested, device, cpuinfo):
                log.warning(warning)
            return cls(requested, device.type)
        name, reason = _auto(device, cpuinfo)
        log.info("decoding precision %s: %s", name, reason)
        return cls(name, device.type, reason)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.name, self.device_type)

    def describe(self) -> str:
        """``precision bf16 (auto: CPU has AVX512-BF16)`` for the output; "" for fp32 asked
        for (the default, said nothing of)."""
        if self.name == "fp32" and not self.reason:
            return ""
        return f"precision {self.name}" + (f" (auto: {self.reason})" if self.reason else "")

    def settings(self) -> dict[str, str]:
        """The part of a result directory's name: nothing for fp32."""
        return {} if self.name == "fp32" else {"precision": self.name}


FP32 = DecodePrecision("fp32", "cpu")


def check_precision(requested: str) -> None:
    """A one-line error for a precision that is not one of PRECISIONS."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}, got {requested!r}")


def _auto(device: torch.device, cpuinfo: str | None) -> tuple[str, str]:
    native, why = native_bf16(device, cpuinfo)
    return ("bf16" if native else "fp32"), why
