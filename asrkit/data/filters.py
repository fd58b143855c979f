"""Utterance filters applied before batching, with a count per reason.

CTC needs at least one encoder frame per token, so utterances whose token count exceeds
their encoder frame count are dropped, as are those outside [min_duration, max_duration]
and those whose text tokenizes to nothing. The encoder frame count is a lower bound, so
that no kept utterance is unalignable in any epoch: the utterance played at the fastest
speed-perturbation factor, then the output length of the conv2d subsampling stack of that
factor (asrkit.models.subsampling: 98 fbank frames give 23 at 4x, not 98 // 4 = 24).
ContextNet's padded strides keep ceil(T / f) frames, at least as many.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from asrkit.data.augment import speed_perturbed_length
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance

# asrkit.models.subsampling imports only torch, so this makes no import cycle
from asrkit.models.subsampling import CONV_LAYERS, conv_output_length

log = logging.getLogger(__name__)

TOO_SHORT = "shorter than min_duration"
TOO_LONG = "longer than max_duration"
NO_TOKENS = "no tokens after tokenization"
TOO_MANY_TOKENS = "more tokens than frames after subsampling"


def subsampled_frames(frames: int, subsampling: int) -> int:
    """The fewest encoder frames an encoder subsampling by `subsampling` makes from `frames`.

    For 4, 6 and 8 that is the conv2d stack's output length; for another factor, with no
    stack to copy, frames // subsampling - 1 (what the stacks come to, within a frame).
    """
    if subsampling <= 1:
        return frames
    if subsampling in CONV_LAYERS:
        return max(conv_output_length(frames, CONV_LAYERS[subsampling]), 0)
    return max(frames // subsampling - 1, 0)


def filter_utterances(
    utterances: Sequence[Utterance],
    token_ids: Sequence[Sequence[int]],
    extractor: FbankExtractor,
    min_duration: float = 0.0,
    max_duration: float = float("inf"),
    subsampling: int = 1,
    fastest_speed: float = 1.0,
    name: str = "data",
) -> tuple[list[int], Counter]:
    """Indices of the utterances to keep, and how many were dropped for each reason.

    `fastest_speed` is the largest speed-perturbation factor (1.0 without perturbation).
    """
    keep, dropped = [], Counter()
    rate = extractor.sample_rate
    for index, (utt, tokens) in enumerate(zip(utterances, token_ids)):
        if utt.duration < min_duration:
            dropped[TOO_SHORT] += 1
        elif utt.duration > max_duration:
            dropped[TOO_LONG] += 1
        elif not tokens:
            dropped[NO_TOKENS] += 1
        else:
            samples = speed_perturbed_length(int(utt.duration * rate), rate, fastest_speed)
            if len(tokens) > subsampled_frames(extractor.num_frames(samples), subsampling):
                dropped[TOO_MANY_TOKENS] += 1
            else:
                keep.append(index)
    if dropped:
        details = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
        log.warning("%s: kept %d of %d utterances; dropped %s", name, len(keep), len(utterances), details)
    else:
        log.info("%s: kept all %d utterances", name, len(keep))
    return keep, dropped
