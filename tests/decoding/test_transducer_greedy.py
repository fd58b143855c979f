import pytest
import torch

from asrkit.decoding.transducer_greedy import (
    TransducerGreedySearchState,
    transducer_greedy_search,
)
from tests.models.transducer_reference import lattice_log_probs, tiny_head


def _enc(lengths, dim=6, seed=0):
    """(B, T, dim) encoder output whose padding is large noise."""
    gen = torch.Generator().manual_seed(seed)
    enc = torch.randn(len(lengths), max(lengths), dim, generator=gen)
    for b, n in enumerate(lengths):
        enc[b, n:] = 100.0 * torch.randn(max(lengths) - n, dim, generator=gen)
    return enc, torch.tensor(lengths)


def _naive_greedy(head, enc, max_symbols):
    """One utterance (T, D): at each frame take the argmax; a label is emitted (up to
    max_symbols per frame) and the frame looked at again, a blank moves on."""
    labels, frames, score = [], [], 0.0
    for t in range(enc.size(0)):
        for _ in range(max_symbols):
            log_probs = lattice_log_probs(head, enc, labels)[t, len(labels)]  # (V,)
            best = int(log_probs.argmax())
            score += float(log_probs[best])
            if best == head.blank_id:
                break
            labels.append(best)
            frames.append(t)
    return tuple(labels), tuple(frames), score


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("max_symbols,blank_bias", [(1, 0.0), (2, 1.0), (4, 2.0)])
def test_batched_greedy_equals_the_step_by_step_reference(prediction, max_symbols, blank_bias):
    head = tiny_head(vocab_size=6, prediction=prediction, seed=1, sharpen=3.0,
                     blank_bias=blank_bias)
    enc, lens = _enc([7, 3, 5, 1], seed=1)
    nbest, frames = transducer_greedy_search(head, enc, lens, max_symbols, return_frames=True)
    emitted = 0
    for b, n in enumerate(lens.tolist()):
        labels, label_frames, score = _naive_greedy(head, enc[b, :n], max_symbols)
        assert len(nbest[b]) == 1 and nbest[b][0].tokens == labels
        assert frames[b] == [label_frames]
        assert nbest[b][0].score == pytest.approx(score, abs=1e-4)
        emitted += len(labels)
    assert emitted > 0


def test_a_looping_model_is_cut_at_max_symbols_per_frame():
    head = tiny_head(vocab_size=6, seed=2, sharpen=3.0, blank_bias=-20.0)  # never blank
    enc, lens = _enc([5, 2], seed=2)
    nbest, frames = transducer_greedy_search(head, enc, lens, max_symbols_per_frame=3,
                                             return_frames=True)
    for b, n in enumerate(lens.tolist()):
        assert frames[b][0] == tuple(t for t in range(n) for _ in range(3))
        assert nbest[b][0].tokens == _naive_greedy(head, enc[b, :n], 3)[0]


def test_padding_invariance_and_empty_utterances():
    head = tiny_head(vocab_size=5, prediction="stateless", seed=3, sharpen=3.0, blank_bias=1.0)
    enc, lens = _enc([2, 9, 0, 6], seed=3)
    batched, batched_frames = transducer_greedy_search(head, enc, lens, return_frames=True)
    for b, n in enumerate(lens.tolist()):
        alone, alone_frames = transducer_greedy_search(head, enc[b: b + 1, :n], lens[b: b + 1],
                                                       return_frames=True)
        assert alone[0][0].tokens == batched[b][0].tokens
        assert alone_frames[0] == batched_frames[b]
        assert alone[0][0].score == pytest.approx(batched[b][0].score, abs=1e-5)
    assert batched[2] == [((), 0.0)]


def test_rejects_a_zero_symbol_cap():
    with pytest.raises(ValueError, match="max_symbols_per_frame"):
        transducer_greedy_search(tiny_head(), *_enc([3]), max_symbols_per_frame=0)


def advance_in_chunks(search, enc, lens, chunk: int) -> list:
    """Feed enc (B, T, D) to a search state ``chunk`` frames at a time (each utterance's
    valid frames of the chunk: its length minus the frames before, within the chunk);
    -> the state's N-best (with frames) after each chunk."""
    after = []
    for start in range(0, enc.size(1), chunk):
        part = enc[:, start: start + chunk]
        search.advance(part, (lens - start).clamp(0, part.size(1)))
        after.append(search.nbest(return_frames=True))
    return after


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 40])
def test_chunk_by_chunk_equals_the_offline_search(prediction, chunk):
    """Batched over utterances of different lengths (one of none); 40: the whole utterance
    in one chunk. The label storage starts empty and grows with the chunks."""
    head = tiny_head(vocab_size=6, prediction=prediction, seed=4, sharpen=3.0, blank_bias=0.5)
    enc, lens = _enc([17, 40, 0, 9], seed=4)
    expected, expected_frames = transducer_greedy_search(head, enc, lens, 2, return_frames=True)
    search = TransducerGreedySearchState(head, 4, max_symbols_per_frame=2)
    nbest, frames = advance_in_chunks(search, enc, lens, chunk)[-1]
    assert frames == expected_frames
    for got, want in zip(nbest, expected):
        assert got[0].tokens == want[0].tokens
        assert got[0].score == pytest.approx(want[0].score, abs=1e-5)
    assert sum(len(n[0].tokens) for n in nbest) > 20  # real hypotheses, storage grown


def test_partial_hypotheses_after_every_chunk_are_the_search_so_far():
    head = tiny_head(vocab_size=6, prediction="lstm", seed=5, sharpen=3.0, blank_bias=0.5)
    enc, lens = _enc([23], seed=5)
    search = TransducerGreedySearchState(head, 1)
    for number, (nbest, frames) in enumerate(advance_in_chunks(search, enc, lens, 4)):
        seen = min(4 * (number + 1), 23)
        cut, cut_frames = transducer_greedy_search(head, enc[:, :seen], torch.tensor([seen]),
                                                   return_frames=True)
        assert nbest[0][0].tokens == cut[0][0].tokens and frames == cut_frames
        assert nbest[0][0].score == pytest.approx(cut[0][0].score, abs=1e-5)
