"""The training tests run on one intra-op thread; their corpus (``corpus``: 30 synth
utterances, a character tokenizer, CMVN statistics and the overrides of a tiny model that
trains in about a second per epoch) comes from tests/conftest.py."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these tiny models gain nothing from two, and a shared 2-core
    machine makes two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_log_handlers_left():
    """A test whose Trainer was set up but not cleaned up leaves train.log's handlers on the
    "asrkit" logger, writing to this test's captured stderr once it is closed; the next
    test's warnings would then print "--- Logging error ---" tracebacks."""
    yield
    from asrkit.training.log_handlers import teardown_logging

    teardown_logging()
