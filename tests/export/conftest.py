"""Fixtures of the export tests: one intra-op thread (the trained synth model and its
transducers, ``trained`` and ``trained_transducer``, are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import intra_op_threads


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield
