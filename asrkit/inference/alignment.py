"""Token timestamps from CTC forced alignment of the final hypothesis.

Whatever search produced a hypothesis, its tokens are aligned to the CTC posteriors of the
same encoder output with the Viterbi forced alignment of CTC (Graves et al. 2006; here
``torchaudio.functional.forced_align``, the best path through the blank-interleaved label
sequence). A token spans the encoder frames its label occupies on that path; its
confidence is the mean posterior of its label over those frames.

    spans = ctc_token_spans(ctc_log_probs[b, :enc_lens[b]], hyp.tokens, blank_id=0)
    spans.start, spans.end        # (U,) first and one-past-last encoder frame
    spans.confidence              # (U,) mean posterior

A hypothesis the alignment cannot support (more frames needed than there are: one per
token plus a blank between repeated tokens; possible for attention-decoder output) gets
evenly spaced spans instead, marked ``aligned=False``.

Frames become seconds with the encoder's frame timing (``FrameTiming``): frame t is centred
at ``first_centre + t * period`` (period = subsampling factor x feature shift;
first_centre = the centre of the audio that the first encoder frame is computed from), and
a span of frames [s, e) covers [centre(s) - period/2, centre(e - 1) + period/2].
A transducer's emission frames become seconds the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torchaudio.functional as AF

from asrkit.data.filters import ctc_min_frames


class TokenSpans(NamedTuple):
    start: torch.Tensor       # (U,) long: first encoder frame
    end: torch.Tensor         # (U,) long: one past the last encoder frame
    confidence: torch.Tensor  # (U,) float: mean posterior over the span
    aligned: bool             # False: evenly spaced (the alignment was impossible)


@dataclass(frozen=True)
class FrameTiming:
    period: float        # seconds between encoder frames
    first_centre: float  # seconds from the input's start to encoder frame 0's centre

    @classmethod
    def of_encoder(cls, output_lengths, frame_shift: float, frame_length: float,
                   ) -> FrameTiming:
        """From an encoder's ``output_lengths`` (input frames -> encoder frames) and the
        fbank frame shift and length (seconds)."""
        probe = torch.arange(1, 4097)
        out = output_lengths(probe)
        needed = int(probe[out >= 1][0])  # input frames the first encoder frame is made of
        factor = float(probe[-1]) / float(out[-1])
        factor = round(factor) if abs(factor - round(factor)) < 0.05 else factor
        first_centre = (needed - 1) / 2 * frame_shift + frame_length / 2
        return cls(factor * frame_shift, first_centre)

    def seconds(self, start: torch.Tensor, end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame spans [start, end) -> (start, end) seconds from the input's start."""
        half = self.period / 2
        begin = self.first_centre + start.double() * self.period - half
        finish = self.first_centre + (end.double() - 1) * self.period + half
        return begin.clamp(min=0.0), finish.clamp(min=0.0)


def frames_needed(tokens: torch.Tensor) -> int:
    """Frames a CTC path needs for ``tokens`` (asrkit.data.filters.ctc_min_frames)."""
    return ctc_min_frames(tokens.tolist())


def ctc_token_spans(log_probs: torch.Tensor, tokens: tuple[int, ...] | list[int],
                    blank_id: int = 0) -> TokenSpans:
    """log_probs (T, V) of one utterance (its valid frames), tokens (U,) -> their spans."""
    labels = torch.as_tensor(list(tokens), dtype=torch.long)
    frames = log_probs.size(0)
    if labels.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return TokenSpans(empty, empty, torch.zeros(0), True)
    if frames < frames_needed(labels):
        return even_spans(frames, labels.numel())
    path, scores = AF.forced_align(log_probs.float().unsqueeze(0).cpu(), labels.unsqueeze(0),
                                   blank=blank_id)
    path, scores = path[0], scores[0]  # (T,): label per frame and its log-probability
    # a token starts where a non-blank label begins: after a blank or another label
    label_frame = path != blank_id
    previous = torch.cat([torch.tensor([blank_id]), path[:-1]])
    begins = label_frame & ((previous == blank_id) | (previous != path))
    index = torch.cumsum(begins.long(), 0) - 1  # token number of each frame
    token_of_frame = index[label_frame]         # (F,) for the label frames
    frame_numbers = torch.arange(frames)[label_frame]
    count = labels.numel()
    start = torch.full((count,), frames, dtype=torch.long).scatter_reduce(
        0, token_of_frame, frame_numbers, "amin")
    end = torch.zeros(count, dtype=torch.long).scatter_reduce(
        0, token_of_frame, frame_numbers + 1, "amax")
    posterior = torch.zeros(count).scatter_add(0, token_of_frame, scores[label_frame].exp())
    confidence = posterior / (end - start).clamp(min=1)
    return TokenSpans(start, end, confidence, True)


def even_spans(frames: int, count: int) -> TokenSpans:
    """``count`` tokens spread evenly over ``frames`` frames, confidence 0 (not aligned)."""
    edges = torch.linspace(0, frames, count + 1).round().long()
    end = torch.maximum(edges[1:], edges[:-1] + 1).clamp(max=max(frames, 1))
    return TokenSpans(edges[:-1].clamp(max=max(frames - 1, 0)), end, torch.zeros(count), False)
