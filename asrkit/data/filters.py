"""Utterance filters applied before batching, with a count per reason.

CTC needs at least one encoder frame per token, so utterances whose token count exceeds
their frame count after the encoder's subsampling are dropped, as are those outside
[min_duration, max_duration] and those whose text tokenizes to nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance

log = logging.getLogger(__name__)

TOO_SHORT = "shorter than min_duration"
TOO_LONG = "longer than max_duration"
NO_TOKENS = "no tokens after tokenization"
TOO_MANY_TOKENS = "more tokens than frames after subsampling"


def filter_utterances(
    utterances: Sequence[Utterance],
    token_ids: Sequence[Sequence[int]],
    extractor: FbankExtractor,
    min_duration: float = 0.0,
    max_duration: float = float("inf"),
    subsampling: int = 1,
    name: str = "data",
) -> tuple[list[int], Counter]:
    """Indices of the utterances to keep, and how many were dropped for each reason."""
    keep, dropped = [], Counter()
    for index, (utt, tokens) in enumerate(zip(utterances, token_ids)):
        if utt.duration < min_duration:
            dropped[TOO_SHORT] += 1
        elif utt.duration > max_duration:
            dropped[TOO_LONG] += 1
        elif not tokens:
            dropped[NO_TOKENS] += 1
        elif len(tokens) > extractor.frames_for_duration(utt.duration) // max(subsampling, 1):
            dropped[TOO_MANY_TOKENS] += 1
        else:
            keep.append(index)
    if dropped:
        details = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
        log.warning("%s: kept %d of %d utterances; dropped %s", name, len(keep), len(utterances), details)
    else:
        log.info("%s: kept all %d utterances", name, len(keep))
    return keep, dropped
