"""Comparing two `asrkit transcribe --format json` files: a streamed transcript against
the offline one of the same audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def assert_same_transcript(streamed: Path, offline: Path) -> None:
    """Same source, text, duration and windows, the same words and tokens with their times;
    scores within 1e-3 and confidences within 2e-4 (the two paths sum in another order)."""
    got, want = (json.loads(f.read_text()) for f in (streamed, offline))
    assert got["text"] and got["words"] and got["tokens"]
    for key in ("source", "text", "duration", "windows"):
        assert got[key] == want[key]
    assert got["score"] == pytest.approx(want["score"], abs=1e-3)
    for kind in ("words", "tokens"):
        assert len(got[kind]) == len(want[kind])
        for a, b in zip(got[kind], want[kind]):
            assert a == {**b, "confidence": pytest.approx(b["confidence"], abs=2e-4)}
