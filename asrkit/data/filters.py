"""Utterance filters applied before batching, with a count per reason.

CTC needs at least one encoder frame per token and a blank frame between two equal tokens
in a row (Graves et al. 2006; torch's ctc_loss is infinite otherwise), so utterances whose
tokens need more frames than the encoder gives (``ctc_min_frames``) are dropped, as are those outside [min_duration, max_duration]
and those whose text tokenizes to nothing. A model without CTC (a transducer alone, which
can emit several tokens on one frame) still needs one encoder frame (Graves 2012: the last
blank is emitted from frame T), so utterances too short for any are dropped whatever the
model (``frame_per_token=False`` keeps only that check). The encoder frame count is a lower bound, so
that no kept utterance is unalignable in any epoch: the utterance played at the fastest
speed-perturbation factor, then the encoder's own ``output_lengths`` (the encoder contract,
asrkit.models.encoder_interface; e.g. 98 fbank frames give 23 after a conv2d 4x stack, not
98 // 4 = 24). Without an encoder (``output_lengths=None``) tokens are not counted.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from asrkit.data.augment import speed_perturbed_length
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance

log = logging.getLogger(__name__)

TOO_SHORT = "shorter than min_duration"
TOO_LONG = "longer than max_duration"
NO_TOKENS = "no tokens after tokenization"
TOO_MANY_TOKENS = "more tokens than frames after subsampling (a repeat counts twice)"
NO_FRAMES = "no encoder frame after subsampling"


# (batch,) input frames -> (batch,) encoder frames: an encoder's ``output_lengths``
OutputLengths = Callable[[torch.Tensor], torch.Tensor]


def filter_utterances(
    utterances: Sequence[Utterance],
    token_ids: Sequence[Sequence[int]],
    extractor: FbankExtractor,
    min_duration: float = 0.0,
    max_duration: float = float("inf"),
    output_lengths: OutputLengths | None = None,
    fastest_speed: float = 1.0,
    name: str = "data",
    frame_per_token: bool = True,
) -> tuple[list[int], Counter]:
    """Indices of the utterances to keep, and how many were dropped for each reason.

    `output_lengths` is the encoder's (input frames -> encoder frames, batched);
    `fastest_speed` the largest speed-perturbation factor (1.0 without perturbation);
    `frame_per_token`: whether every token needs an encoder frame of its own (CTC), else
    only one frame is required.
    """
    keep, dropped = [], Counter()
    encoder_frames = _encoder_frames(utterances, extractor, output_lengths, fastest_speed)
    for index, (utt, tokens) in enumerate(zip(utterances, token_ids)):
        if utt.duration < min_duration:
            dropped[TOO_SHORT] += 1
        elif utt.duration > max_duration:
            dropped[TOO_LONG] += 1
        elif not tokens:
            dropped[NO_TOKENS] += 1
        elif encoder_frames is not None and encoder_frames[index] == 0:
            dropped[NO_FRAMES] += 1
        elif (frame_per_token and encoder_frames is not None
              and ctc_min_frames(tokens) > encoder_frames[index]):
            dropped[TOO_MANY_TOKENS] += 1
        else:
            keep.append(index)
    if dropped:
        details = ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))
        log.warning("%s: kept %d of %d utterances; dropped %s", name, len(keep), len(utterances), details)
    else:
        log.info("%s: kept all %d utterances", name, len(keep))
    return keep, dropped


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """The fewest frames a CTC path for ``tokens`` takes: one per token, plus a blank
    between each two equal neighbours."""
    return len(tokens) + sum(a == b for a, b in itertools.pairwise(tokens))


def _encoder_frames(utterances: Sequence[Utterance], extractor: FbankExtractor,
                    output_lengths: OutputLengths | None, fastest_speed: float) -> list[int] | None:
    """The fewest encoder frames of each utterance (at the fastest speed), in one call of the
    encoder's ``output_lengths``; None without one."""
    if output_lengths is None:
        return None
    rate = extractor.sample_rate
    frames = [extractor.num_frames(speed_perturbed_length(int(u.duration * rate), rate,
                                                          fastest_speed)) for u in utterances]
    with torch.no_grad():
        counts = output_lengths(torch.tensor(frames, dtype=torch.long))
    return [max(int(n), 0) for n in counts.tolist()]
