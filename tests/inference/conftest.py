"""Fixtures of the transcription tests: one intra-op thread and a 10-minute recording made
of the trained synth model's training utterances with known utterance boundaries (the
model, ``trained``, and its transducers, ``trained_transducer``, are in tests/conftest.py)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.data.audio import load_audio
from tests.conftest import intra_op_threads


@pytest.fixture(autouse=True)
def one_thread():
    with intra_op_threads(1):
        yield


@dataclass
class LongRecording:
    path: Path
    texts: list[str]          # each placed utterance's transcript, in order
    bounds: np.ndarray        # (n + 1,) seconds: utterance k lies in [bounds[k], bounds[k+1])


@pytest.fixture(scope="session")
def long_recording(trained, tmp_path_factory) -> LongRecording:
    """At least 10 minutes of the model's training utterances in a seeded random order."""
    waves = [load_audio(u.audio).numpy() for u in trained.utterances]
    rng = random.Random(0)
    order, total = [], 0.0
    while total < 600.0:
        order.append(rng.randrange(len(waves)))
        total += waves[order[-1]].size / 16000
    path = tmp_path_factory.mktemp("long") / "ten_minutes.wav"
    sf.write(str(path), np.concatenate([waves[i] for i in order]), 16000, subtype="PCM_16")
    bounds = np.cumsum([0] + [waves[i].size for i in order]) / 16000
    return LongRecording(path, [trained.utterances[i].text for i in order], bounds)
