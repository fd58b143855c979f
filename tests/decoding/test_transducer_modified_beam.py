import itertools
import math

import pytest

from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import (
    TransducerModifiedBeamSearchState,
    transducer_modified_beam_search,
)
from tests.decoding.test_transducer_beam import _add, _best
from tests.decoding.test_transducer_greedy import _enc, advance_in_chunks
from tests.models.transducer_reference import lattice_log_probs, tiny_head


def _one_symbol_per_frame_scores(head, enc, vocab):
    """enc (T, D) -> {label sequence: log of the summed probability of its alignments with
    exactly one symbol per frame}, every one of the V^T alignments enumerated."""
    frames, lattices, totals = enc.size(0), {}, {}
    for alignment in itertools.product(range(vocab), repeat=frames):
        labels = tuple(a for a in alignment if a != head.blank_id)
        if labels not in lattices:
            lattices[labels] = lattice_log_probs(head, enc, labels)
        log_probs, u, score = lattices[labels], 0, 0.0
        for t, symbol in enumerate(alignment):
            score += float(log_probs[t, u, symbol])
            u += symbol != head.blank_id
        totals[labels] = totals.get(labels, 0.0) + math.exp(score)
    return {labels: math.log(p) for labels, p in totals.items()}


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("frames,vocab", [(3, 4), (4, 3)])
def test_a_beam_holding_every_sequence_gives_the_exact_scores(prediction, frames, vocab):
    head = tiny_head(vocab_size=vocab, prediction=prediction, seed=frames, sharpen=2.0)
    enc, lens = _enc([frames], seed=frames)
    exact = _one_symbol_per_frame_scores(head, enc[0], vocab)
    ranked = sorted(exact, key=lambda labels: -exact[labels])
    nbest, frame_lists = transducer_modified_beam_search(head, enc, lens, beam=len(exact),
                                                         return_frames=True)
    assert len(nbest[0]) == len(exact)
    for hyp in nbest[0]:
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-4)
    assert [h.tokens for h in nbest[0][:8]] == ranked[:8]
    for hyp, label_frames in zip(nbest[0], frame_lists[0]):  # one symbol per frame
        assert len(label_frames) == len(hyp.tokens)
        assert list(label_frames) == sorted(set(label_frames))
        assert all(0 <= t < frames for t in label_frames)


def _naive_modified_beam(lattice, frames, vocab, beam):
    """Modified beam search with dictionaries {labels: (score, frames)}: on every frame each
    sequence takes a blank or one label, the beam best are kept."""
    hyps = {(): (0.0, ())}
    for t in range(frames):
        cands = {}
        for y, (score, label_frames) in hyps.items():
            log_probs = lattice(y)[t, len(y)].tolist()
            _add(cands, y, score + log_probs[0], label_frames)
            for v in range(1, vocab):
                _add(cands, y + (v,), score + log_probs[v], label_frames + (t,))
        hyps = _best(cands, beam)
    return list(hyps.items())


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("beam", [2, 4])
def test_a_narrow_beam_prunes_as_the_dictionary_search_does(prediction, beam):
    head = tiny_head(vocab_size=4, prediction=prediction, seed=12, sharpen=2.0)
    enc, lens = _enc([6], seed=12)
    cache = {}
    expected = _naive_modified_beam(
        lambda y: cache.setdefault(y, lattice_log_probs(head, enc[0], y)), 6, 4, beam)
    nbest, frames = transducer_modified_beam_search(head, enc, lens, beam=beam,
                                                    return_frames=True)
    assert [h.tokens for h in nbest[0]] == [y for y, _ in expected]
    assert [h.score for h in nbest[0]] == pytest.approx([s for _, (s, _) in expected], abs=1e-4)
    assert frames[0] == [f for _, (_, f) in expected]


def test_a_small_beam_finds_the_best_sequence_on_peaky_outputs():
    greedy_misses = 0
    for seed in range(4):
        head = tiny_head(vocab_size=4, seed=seed, sharpen=4.0)
        enc, lens = _enc([4], seed=seed)
        exact = _one_symbol_per_frame_scores(head, enc[0], 4)
        best = max(exact, key=exact.get)
        hyp = transducer_modified_beam_search(head, enc, lens, beam=4)[0][0]
        assert hyp.tokens == best, seed
        assert hyp.score <= exact[best] + 1e-5  # the alignments the beam kept, not all
        greedy = transducer_greedy_search(head, enc, lens, max_symbols_per_frame=1)[0][0]
        greedy_misses += greedy.tokens != best
    assert greedy_misses == 3


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
def test_beam_one_is_greedy_search_with_one_symbol_per_frame(prediction):
    head = tiny_head(vocab_size=7, prediction=prediction, seed=5, sharpen=3.0)
    enc, lens = _enc([9, 4, 6], seed=5)
    beam, beam_frames = transducer_modified_beam_search(head, enc, lens, beam=1,
                                                        return_frames=True)
    greedy, greedy_frames = transducer_greedy_search(head, enc, lens, max_symbols_per_frame=1,
                                                     return_frames=True)
    assert beam_frames == greedy_frames
    for b in range(3):
        assert beam[b][0].tokens == greedy[b][0].tokens
        assert beam[b][0].score == pytest.approx(greedy[b][0].score, abs=1e-5)


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
def test_padding_invariance(prediction):
    head = tiny_head(vocab_size=6, prediction=prediction, seed=6, sharpen=2.0)
    enc, lens = _enc([3, 10, 0, 7], seed=6)
    batched, batched_frames = transducer_modified_beam_search(head, enc, lens, beam=5,
                                                              return_frames=True)
    for b, n in enumerate(lens.tolist()):
        alone, alone_frames = transducer_modified_beam_search(
            head, enc[b: b + 1, :n], lens[b: b + 1], beam=5, return_frames=True)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in batched[b]]
        assert [h.score for h in alone[0]] == pytest.approx([h.score for h in batched[b]],
                                                            abs=1e-5)
        assert alone_frames[0] == batched_frames[b]
    assert batched[2] == [((), 0.0)]
    scores = [h.score for h in batched[1]]
    assert scores == sorted(scores, reverse=True)
    assert len({h.tokens for h in batched[1]}) == len(batched[1]) == 5


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("chunk", [1, 4, 11, 30])
def test_chunk_by_chunk_equals_the_offline_search(prediction, chunk):
    """Batched over utterances of different lengths (one of none); 30: the whole utterance
    in one chunk. The label storage starts empty and grows with the chunks; after every
    chunk the N-best is the offline search's over the frames so far."""
    head = tiny_head(vocab_size=6, prediction=prediction, seed=7, sharpen=2.0)
    enc, lens = _enc([13, 30, 0, 8], seed=7)
    search = TransducerModifiedBeamSearchState(head, 4, beam=4)
    after = advance_in_chunks(search, enc, lens, chunk)
    for number, (nbest, frames) in enumerate(after):
        seen = min(chunk * (number + 1), 30)
        cut_lens = lens.clamp(max=seen)
        expected, expected_frames = transducer_modified_beam_search(
            head, enc[:, :seen], cut_lens, beam=4, return_frames=True)
        assert frames == expected_frames
        for got, want in zip(nbest, expected):
            assert [h.tokens for h in got] == [h.tokens for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
    assert len(after[-1][0][1][0].tokens) > 10  # the longest has many labels: storage grown
