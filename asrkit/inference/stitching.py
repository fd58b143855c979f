"""Stitching the decoded windows of one recording into its transcript.

Windows overlap (asrkit.inference.windows): each is decoded with context on both sides of
the part it owns. A word is kept from the one window whose owned part holds the word's
midpoint (by its aligned times), so a word heard by two windows is neither lost nor
written twice; its tokens go with it. The first window owns everything before its end and
the last everything after its start.

    stitcher = Stitcher("talk.wav", duration=3600.0, builder=WordBuilder(tokenizer))
    stitcher.add(number, keep=(20.0, 39.7), first=False, last=False, hypothesis=window_hyp)
    transcript = stitcher.result()      # windows in order, whatever order they came in
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asrkit.inference.result import Token, Transcript, Word
from asrkit.inference.words import WordBuilder


@dataclass
class WindowHypothesis:
    """The best hypothesis of one window with its token times (seconds in the recording)."""
    ids: torch.Tensor          # (U,) token ids
    start: torch.Tensor        # (U,) seconds
    end: torch.Tensor          # (U,) seconds
    confidence: torch.Tensor   # (U,)
    aligned: bool
    score: float


@dataclass
class Stitcher:
    source: str
    duration: float
    builder: WordBuilder
    _parts: dict[int, tuple[list[Word], list[Token], float]] = field(default_factory=dict)

    def add(self, number: int, keep: tuple[float, float], first: bool, last: bool,
            hypothesis: WindowHypothesis) -> None:
        """Window ``number``'s hypothesis; ``keep``: the seconds it owns."""
        h = hypothesis
        words, word_of_token = self.builder.words(h.ids, h.start, h.end, h.confidence,
                                                  h.aligned)
        low = float("-inf") if first else keep[0]
        high = float("inf") if last else keep[1]
        midpoints = torch.tensor([w.midpoint for w in words], dtype=torch.float64)
        kept = (midpoints >= low) & (midpoints < high)  # (W,)
        token_kept = (word_of_token >= 0) & kept[word_of_token.clamp(min=0)] if words else \
            torch.zeros_like(word_of_token, dtype=torch.bool)
        units = self.builder.tokenizer.units
        tokens = [Token(int(i), units[int(i)], s, e, c) for i, s, e, c in zip(
            h.ids[token_kept].tolist(), h.start[token_kept].tolist(),
            h.end[token_kept].tolist(), h.confidence[token_kept].tolist())]
        self._parts[number] = ([w for w, k in zip(words, kept.tolist()) if k], tokens, h.score)

    def result(self) -> Transcript:
        words, tokens, score = [], [], 0.0
        for number in sorted(self._parts):
            part_words, part_tokens, part_score = self._parts[number]
            words += part_words
            tokens += part_tokens
            score += part_score
        return Transcript(self.source, self.builder.join([w.text for w in words]), words,
                          tokens, score, self.duration, len(self._parts))
