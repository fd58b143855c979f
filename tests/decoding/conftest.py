"""Fixtures of the decoding tests: one intra-op thread, and the exhaustive CTC reference
(every path enumerated and summed per labelling). The tiny model, the synth corpus and the
experiment directory come from tests/conftest.py."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch


def _collapse(path, blank: int = 0) -> tuple[int, ...]:
    labels, previous = [], None
    for p in path:
        if p != previous and p != blank:
            labels.append(p)
        previous = p
    return tuple(labels)


def _labelling_log_probs(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log_probs (T, V) -> {labelling: log P(labelling)}, summing all V^T paths."""
    lp = log_probs.double().tolist()
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(len(lp[0])), repeat=len(lp)):
        key = _collapse(path, blank)
        totals[key] = totals.get(key, 0.0) + math.exp(sum(lp[t][p] for t, p in enumerate(path)))
    return {k: math.log(v) for k, v in totals.items()}


def _prefix_log_prob(labellings: dict[tuple[int, ...], float], prefix: tuple[int, ...]) -> float:
    """log Σ P(l) over the labellings l that start with ``prefix``."""
    total = sum(math.exp(v) for k, v in labellings.items() if k[: len(prefix)] == prefix)
    return math.log(total) if total > 0 else float("-inf")


@pytest.fixture(autouse=True)
def single_thread():
    """Searches run many small ops: on a busy 2-core machine torch's OpenMP threads spin
    against each other (20x slower here); one intra-op thread is faster and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def ctc_reference():
    return SimpleNamespace(collapse=_collapse, labelling_log_probs=_labelling_log_probs,
                           prefix_log_prob=_prefix_log_prob)
