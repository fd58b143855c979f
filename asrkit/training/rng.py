"""RNG hygiene for exact resume.

Creating a DataLoader iterator draws a worker seed from torch's global generator, so a run
resumed mid-epoch (which creates its iterator at a different point) would otherwise see a
different dropout stream from the run it continues. The training loop therefore fetches
every batch inside ``rng_isolated()``: data loading leaves the global CPU generator exactly
as it found it, and the model's randomness depends only on the updates done so far.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def rng_isolated() -> Iterator[None]:
    """Restore torch's global CPU generator state on exit."""
    state = torch.get_rng_state()
    try:
        yield
    finally:
        torch.set_rng_state(state)
