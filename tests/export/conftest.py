"""Fixtures of the export tests: one intra-op thread (the trained synth model and its
transducers, ``trained`` and ``trained_transducer``, are in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
