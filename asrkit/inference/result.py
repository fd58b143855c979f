"""What transcribing a recording returns.

    t = transcriber.transcribe(["talk.wav"])[0]
    t.text                       # "the cat sat on the mat"
    t.words[0]                   # Word(text="the", start=0.42, end=0.58, confidence=0.97)
    t.tokens[0]                  # Token(id=17, text="▁the", start=0.42, end=0.58, ...)
    t.score, t.duration, t.to_dict()

Times are seconds from the start of the recording. A word's confidence is the mean
posterior of its tokens (asrkit.inference.alignment); ``aligned`` is False when a token's
times could not come from the alignment (evenly spaced instead). ``score`` is the search's
log-domain score of the hypothesis, summed over the recording's windows (comparable only
between recordings decoded with the same method and windows). A recording that could not
be transcribed is a ``Failure`` naming it and the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Token:
    id: int
    text: str         # the unit as the tokenizer spells it
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    confidence: float
    aligned: bool = True

    @property
    def midpoint(self) -> float:
        return (self.start + self.end) / 2


@dataclass
class Transcript:
    source: str                 # the path, or "<array N>" for audio given as an array
    text: str
    words: list[Word] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    score: float = 0.0
    duration: float = 0.0       # seconds of audio
    windows: int = 1            # windows the recording was decoded in

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "text": self.text, "duration": round(self.duration, 3),
                "score": self.score, "windows": self.windows,
                "words": [_rounded(asdict(w)) for w in self.words],
                "tokens": [_rounded(asdict(t)) for t in self.tokens]}


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str                 # one line, naming the file

    def __str__(self) -> str:
        return self.reason


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    for key in ("start", "end"):
        entry[key] = round(entry[key], 3)
    entry["confidence"] = round(entry["confidence"], 4)
    return entry
