"""Stitching the decoded windows of one recording into its transcript.

Windows overlap (asrkit.inference.windows): each is decoded with context on both sides of
the part it owns. A word is kept from the one window whose owned part holds the word's
midpoint (by its aligned times), so a word heard by two windows is neither lost nor
written twice; its tokens go with it. The first window owns everything before its end and
the last everything after its start.

The two windows time a word at a seam a little differently (their alignments may differ
by an encoder frame), so a word whose midpoint sits within that of the cut could be kept by
both or by neither. At each seam the stitcher therefore compares the two sides: the same
word (same text, over most of its time) kept on both sides is kept once, from the earlier
window; one kept on neither side (the earlier window placed it after the cut, the later
before) is kept from the earlier window.

    stitcher = Stitcher("talk.wav", duration=3600.0, builder=WordBuilder(tokenizer))
    stitcher.add(number, keep=(20.0, 39.7), first=False, last=False, hypothesis=window_hyp)
    transcript = stitcher.result()      # windows in order, whatever order they came in
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from asrkit.inference.result import Token, Transcript, Word
from asrkit.inference.words import WordBuilder

WordTokens = tuple[Word, list[Token]]


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
class _Part:
    """One window's words: those it owns, and its nearest word on each side outside them."""
    kept: list[WordTokens]
    before: WordTokens | None   # the last word before the owned part
    after: WordTokens | None    # the first word after it
    score: float


def _same_word(a: WordTokens | None, b: WordTokens | None) -> bool:
    """Whether two windows' words are one spoken word: the same text over more than half of
    the shorter one's time (the two alignments differ by a frame or so; a word said twice
    in a row overlaps its repetition by that frame at most)."""
    if a is None or b is None:
        return False
    (x, _), (y, _) = a, b
    overlap = min(x.end, y.end) - max(x.start, y.start)
    return x.text == y.text and overlap > 0.5 * min(x.end - x.start, y.end - y.start)


@dataclass
class Stitcher:
    source: str
    duration: float
    builder: WordBuilder
    _parts: dict[int, _Part] = field(default_factory=dict)

    def add(self, number: int, keep: tuple[float, float], first: bool, last: bool,
            hypothesis: WindowHypothesis) -> None:
        """Window ``number``'s hypothesis; ``keep``: the seconds it owns."""
        h = hypothesis
        words, word_of_token = self.builder.words(h.ids, h.start, h.end, h.confidence,
                                                  h.aligned)
        units = self.builder.tokenizer.units
        tokens: list[list[Token]] = [[] for _ in words]
        for i, s, e, c, w in zip(h.ids.tolist(), h.start.tolist(), h.end.tolist(),
                                 h.confidence.tolist(), word_of_token.tolist()):
            if w >= 0:  # a separator belongs to no word and is not kept
                tokens[w].append(Token(int(i), units[int(i)], s, e, c))
        low = float("-inf") if first else keep[0]
        high = float("inf") if last else keep[1]
        pairs = list(zip(words, tokens))
        before = [p for p in pairs if p[0].midpoint < low]
        after = [p for p in pairs if p[0].midpoint >= high]
        self._parts[number] = _Part([p for p in pairs if low <= p[0].midpoint < high],
                                    before[-1] if before else None,
                                    after[0] if after else None, h.score)

    def result(self) -> Transcript:
        kept: list[WordTokens] = []
        score, previous = 0.0, None
        for number in sorted(self._parts):
            part = self._parts[number]
            words = list(part.kept)
            if previous is not None and number - 1 in self._parts:
                if words and previous.kept and _same_word(previous.kept[-1], words[0]):
                    words = words[1:]   # kept on both sides of the seam: once
                elif _same_word(previous.after, part.before):
                    kept.append(previous.after)  # kept on neither side: from the earlier
            kept += words
            score += part.score
            previous = part
        return Transcript(self.source, self.builder.join([w.text for w, _ in kept]),
                          [w for w, _ in kept], [t for _, ts in kept for t in ts], score,
                          self.duration, len(self._parts))
