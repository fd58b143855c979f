"""Token spans from CTC forced alignment, checked against torchaudio's own merge_tokens, and
encoder frame timing."""

from __future__ import annotations

import pytest
import torch
import torchaudio.functional as AF

from asrkit.inference.alignment import FrameTiming, ctc_token_spans
from asrkit.models.subsampling import Conv2dSubsampling


@pytest.mark.parametrize("seed", range(5))
def test_spans_equal_torchaudio_merge_tokens(seed):
    generator = torch.Generator().manual_seed(seed)
    log_probs = (torch.randn(60, 9, generator=generator) * 3).log_softmax(-1)
    tokens = torch.randint(1, 9, (12,), generator=generator).tolist()
    tokens[3] = tokens[2]  # a repeat needs a blank between
    spans = ctc_token_spans(log_probs, tokens)
    path, scores = AF.forced_align(log_probs[None], torch.tensor([tokens]), blank=0)
    reference = AF.merge_tokens(path[0], scores[0].exp())  # score: mean posterior
    assert [r.token for r in reference] == tokens
    assert spans.start.tolist() == [r.start for r in reference]
    assert spans.end.tolist() == [r.end for r in reference]
    assert torch.allclose(spans.confidence, torch.tensor([r.score for r in reference]))
    assert spans.aligned


def test_impossible_alignment_is_spread_evenly():
    log_probs = torch.randn(5, 6).log_softmax(-1)
    spans = ctc_token_spans(log_probs, [3, 3, 3, 4])  # needs 6 frames
    assert not spans.aligned
    assert spans.start.tolist() == [0, 1, 2, 4] and spans.end.tolist() == [1, 2, 4, 5]
    assert spans.confidence.tolist() == [0.0] * 4


def test_frame_timing_of_conv2d4():
    timing = FrameTiming.of_encoder(Conv2dSubsampling(40, 32, 4).output_lengths, 0.01, 0.025)
    # encoder frame t is made of fbank frames 4t .. 4t+6, centred at (4t+3) * 10 ms + 12.5 ms
    assert timing.period == pytest.approx(0.04)
    assert timing.first_centre == pytest.approx(0.0425)
    start, end = timing.seconds(torch.tensor([0, 10]), torch.tensor([2, 11]))
    assert start.tolist() == pytest.approx([0.0225, 0.4225])
    assert end.tolist() == pytest.approx([0.1025, 0.4625])
