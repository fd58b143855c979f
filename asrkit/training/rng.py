"""RNG hygiene for exact resume: the RNG states a checkpoint stores, and data loading kept
out of the model's random stream.

Creating a DataLoader iterator draws a worker seed from torch's global generator, so a run
resumed mid-epoch (which creates its iterator at a different point) would otherwise see a
different dropout stream from the run it continues. The training loop therefore fetches
every batch inside ``rng_isolated()``: data loading leaves the global CPU generator exactly
as it found it, and the model's randomness depends only on the updates done so far.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


@contextlib.contextmanager
def rng_isolated() -> Iterator[None]:
    """Restore torch's global CPU generator state on exit."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, as tensors (weights_only-loadable)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
