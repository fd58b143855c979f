import math

import pytest
import torch

from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search


def _random(batch, frames, vocab, seed, sharpness=1.0):
    gen = torch.Generator().manual_seed(seed)
    return (sharpness * torch.randn(batch, frames, vocab, generator=gen)).log_softmax(-1)


@pytest.mark.parametrize("seed,frames,vocab", [(0, 5, 4), (1, 6, 3), (2, 4, 5), (3, 1, 4)])
def test_wide_beam_equals_exhaustive_enumeration(ctc_reference, seed, frames, vocab):
    log_probs = _random(1, frames, vocab, seed, sharpness=2.0)
    exact = ctc_reference.labelling_log_probs(log_probs[0])
    ranked = sorted(exact.items(), key=lambda kv: -kv[1])
    # a beam that holds every labelling prefix, every label tried at every frame
    nbest = ctc_prefix_beam_search(log_probs, torch.tensor([frames]), beam=len(exact),
                                   top_k=vocab - 1)[0]
    assert len(nbest) == len(exact)
    assert sum(math.exp(h.score) for h in nbest) == pytest.approx(1.0, abs=1e-4)
    for hyp in nbest:
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-4)
    top = min(10, len(ranked))
    assert [h.tokens for h in nbest[:top]] == [k for k, _ in ranked[:top]]


def test_moderate_beam_finds_the_same_nbest_on_peaky_distributions(ctc_reference):
    log_probs = _random(1, 6, 5, seed=7, sharpness=4.0)
    exact = sorted(ctc_reference.labelling_log_probs(log_probs[0]).items(), key=lambda kv: -kv[1])
    nbest = ctc_prefix_beam_search(log_probs, torch.tensor([6]), beam=8, nbest=3)[0]
    assert [h.tokens for h in nbest] == [k for k, _ in exact[:3]]
    for hyp, (_, score) in zip(nbest, exact[:3]):
        assert hyp.score == pytest.approx(score, abs=1e-4)


def test_batched_equals_per_utterance():
    log_probs = _random(4, 12, 7, seed=3, sharpness=2.0)
    lengths = torch.tensor([12, 3, 8, 1])
    batched = ctc_prefix_beam_search(log_probs, lengths, beam=6, top_k=4)
    for b in range(4):
        alone = ctc_prefix_beam_search(log_probs[b: b + 1, : lengths[b]], lengths[b: b + 1],
                                       beam=6, top_k=4)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[b]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[b]], abs=1e-5)


def test_zero_frames_gives_the_empty_hypothesis():
    nbest = ctc_prefix_beam_search(_random(1, 4, 5, 0), torch.tensor([0]), beam=3)[0]
    assert nbest == [((), 0.0)]


def test_nbest_is_sorted_distinct_and_repeats_need_a_blank():
    # "a a" can only come from a, blank, a: the prefix beam must keep it apart from "a"
    probs = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]) + 1e-4
    log_probs = (probs / probs.sum(-1, keepdim=True)).log()[None]
    nbest = ctc_prefix_beam_search(log_probs, torch.tensor([3]), beam=4)[0]
    tokens = [h.tokens for h in nbest]
    assert len(set(tokens)) == len(tokens)
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    assert tokens[0] == (1, 1)


def test_the_search_carried_over_chunks_equals_the_whole_utterance():
    """Streaming: advancing chunk by chunk (chunks of 1, 3 and 7 frames, a batch of two
    lengths) gives the same N-best as all frames at once, and a partial result after each
    chunk is the search over the frames so far."""
    from asrkit.decoding.ctc_prefix_beam import CTCPrefixBeamSearchState

    torch.manual_seed(3)
    log_probs = (3 * torch.randn(2, 20, 6)).log_softmax(-1)
    lengths = torch.tensor([20, 13])
    whole = ctc_prefix_beam_search(log_probs, lengths, beam=4)
    for size in (1, 3, 7):
        search = CTCPrefixBeamSearchState(2, 6, beam=4)
        for start in range(0, 20, size):
            chunk = log_probs[:, start:start + size]
            valid = (lengths - start).clamp(min=0, max=chunk.size(1))
            search.advance(chunk, valid)
            so_far = ctc_prefix_beam_search(log_probs[:, :start + size],
                                            torch.minimum(lengths, torch.tensor(start + size)),
                                            beam=4)
            assert search.nbest() == so_far
        assert search.nbest() == whole


def test_utterances_of_any_length_order_match_their_search_alone():
    """The batch runs longest first, ended utterances dropping out: unsorted lengths, ties,
    empty utterances and lengths past the frames given all give each utterance's own
    N-best (the same labels, scores to float rounding)."""
    log_probs = _random(7, 17, 6, seed=11, sharpness=2.0)
    lengths = torch.tensor([5, 0, 17, 9, 17, 1, 30])  # 30: more than the 17 frames given
    batched = ctc_prefix_beam_search(log_probs, lengths, beam=4, top_k=3)
    for b in range(7):
        valid = min(int(lengths[b]), 17)
        alone = ctc_prefix_beam_search(log_probs[b: b + 1, :valid], torch.tensor([valid]),
                                       beam=4, top_k=3)[0]
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        assert [h.score for h in batched[b]] == pytest.approx([h.score for h in alone],
                                                              abs=1e-5)
    assert batched[1] == [((), 0.0)]


def test_chunks_of_a_batch_whose_utterances_end_in_different_chunks():
    """Streaming over a batch given in any order of length: each utterance's beam stays as
    it was once its frames end, whichever chunk that is."""
    from asrkit.decoding.ctc_prefix_beam import CTCPrefixBeamSearchState

    log_probs = _random(4, 20, 5, seed=5, sharpness=3.0)
    lengths = torch.tensor([7, 20, 0, 13])
    whole = ctc_prefix_beam_search(log_probs, lengths, beam=5)
    search = CTCPrefixBeamSearchState(4, 5, beam=5)
    for start in range(0, 20, 6):
        chunk = log_probs[:, start:start + 6]
        search.advance(chunk, (lengths - start).clamp(min=0, max=chunk.size(1)))
    assert search.nbest() == whole
