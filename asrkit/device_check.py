"""Checking a device name before anything is loaded on it (``asrkit decode device=...``,
``asrkit transcribe --device ...``): a name torch does not know, or a CUDA device this
machine does not have, is an error naming the option, rather than a failure to load the
checkpoint onto it."""

from __future__ import annotations

import torch


def check_device(name: str, option: str) -> None:
    """ValueError ``<option> <name>: ...`` unless ``name`` is cpu or a CUDA device here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{option} {name}: not a device (cpu, cuda, cuda:N)") from None
    if device.type == "cpu":
        return
    if device.type != "cuda":
        raise ValueError(f"{option} {name}: asrkit runs on cpu or cuda")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (device.index or 0) >= count:
        raise ValueError(f"{option} {name}: this machine has {count} CUDA device(s)")
