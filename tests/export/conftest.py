"""Fixtures of the export tests: one intra-op thread and the trained synth model of the
transcription tests (tests/inference/synth_model.py, made once per session) and its
transducers (tests/inference/synth_transducer.py)."""

from __future__ import annotations

import pytest
import torch

from tests.inference.synth_model import SynthModel, synth_model
from tests.inference.synth_transducer import SynthTransducer, synth_transducer


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> SynthModel:
    return synth_model(tmp_path_factory.getbasetemp() / "synth_model")


@pytest.fixture(scope="session")
def trained_transducer(trained, tmp_path_factory) -> SynthTransducer:
    return synth_transducer(trained, tmp_path_factory.getbasetemp() / "synth_transducer")
