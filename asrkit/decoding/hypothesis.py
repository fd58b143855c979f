"""The result type every search returns: per utterance, an N-best list of hypotheses."""

from __future__ import annotations

from typing import NamedTuple


class Hypothesis(NamedTuple):
    tokens: tuple[int, ...]  # token ids, without blank, sos or eos
    score: float             # log-domain score of the search that produced it


NBest = list[Hypothesis]  # best first
NEG_INF = float("-inf")  # the log-probability of what cannot happen
