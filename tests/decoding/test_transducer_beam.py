import itertools
import math
from collections import Counter
from functools import partial

import pytest
import torch

from asrkit.decoding.transducer_beam import transducer_beam_search
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from tests.decoding.test_transducer_greedy import _enc
from tests.models.transducer_reference import (
    forward_algorithm_nll,
    lattice_log_probs,
    tiny_head,
    trained_like_bigram,
)


def _sequence_log_probs(lattice, vocab, max_labels):
    """{y: log P(y | x)} for every label sequence y of at most max_labels labels, each by the
    forward algorithm over its own lattice (``lattice(y)`` -> (T, U + 1, V))."""
    labels = range(1, vocab)
    return {y: -float(forward_algorithm_nll(lattice(y), y))
            for n in range(max_labels + 1) for y in itertools.product(labels, repeat=n)}


def _add(hyps, labels, score, frames):
    """hyps[labels] = (score, frames): probabilities add up, the frames of the more probable
    of the two are kept."""
    if labels not in hyps:
        hyps[labels] = (score, frames)
        return
    old, old_frames = hyps[labels]
    total = max(old, score) + math.log1p(math.exp(-abs(old - score)))
    hyps[labels] = (total, frames if score > old else old_frames)


def _best(hyps, beam):
    return dict(sorted(hyps.items(), key=lambda kv: -kv[1][0])[:beam])


def _naive_alsd(lattice, frames, vocab, beam, max_labels):
    """Alignment-length synchronous search with dictionaries {labels: (score, frames)}: at
    step i each live sequence y sits on frame i - |y|; a blank moves it on (off the last
    frame: finished), a label extends it; the beam best live and the beam best finished
    are kept."""
    live, final = {(): (0.0, ())}, {}
    for i in range(frames + max_labels):
        cands, finished = {}, {}
        for y, (score, label_frames) in live.items():
            t = i - len(y)
            log_probs = lattice(y)[t, len(y)].tolist()
            _add(finished if t + 1 == frames else cands, y, score + log_probs[0], label_frames)
            if len(y) < max_labels:
                for v in range(1, vocab):
                    _add(cands, y + (v,), score + log_probs[v], label_frames + (t,))
        final = _best({**final, **finished}, beam)
        live = _best(cands, beam)
        if not live:
            break
    return list(_best(final, beam).items())


def _head_lattice(head, enc):
    cache = {}
    return lambda y: cache.setdefault(y, lattice_log_probs(head, enc, y))


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("frames,vocab,ratio", [(3, 4, 1.0), (4, 3, 0.75), (2, 4, 1.5)])
def test_a_beam_holding_every_sequence_gives_log_p_of_every_sequence(prediction, frames, vocab,
                                                                      ratio):
    head = tiny_head(vocab_size=vocab, prediction=prediction, seed=frames, sharpen=2.0)
    enc, lens = _enc([frames], seed=frames)
    exact = _sequence_log_probs(_head_lattice(head, enc[0]), vocab, int(frames * ratio))
    ranked = sorted(exact, key=lambda y: -exact[y])
    nbest, frame_lists = transducer_beam_search(head, enc, lens, beam=len(exact),
                                                max_len_ratio=ratio, return_frames=True)
    assert len(nbest[0]) == len(exact)
    for hyp in nbest[0]:
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-4)
    assert [h.tokens for h in nbest[0][:8]] == ranked[:8]
    for hyp, label_frames in zip(nbest[0], frame_lists[0]):
        assert len(label_frames) == len(hyp.tokens)
        assert list(label_frames) == sorted(label_frames)
        assert all(0 <= t < frames for t in label_frames)


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
@pytest.mark.parametrize("beam", [2, 3])
def test_a_narrow_beam_prunes_as_the_dictionary_search_does(prediction, beam):
    head = tiny_head(vocab_size=4, prediction=prediction, seed=11, sharpen=2.0)
    enc, lens = _enc([5], seed=11)
    expected = _naive_alsd(_head_lattice(head, enc[0]), 5, 4, beam, 5)
    nbest, frames = transducer_beam_search(head, enc, lens, beam=beam, return_frames=True)
    assert [h.tokens for h in nbest[0]] == [y for y, _ in expected]
    assert [h.score for h in nbest[0]] == pytest.approx([s for _, (s, _) in expected], abs=1e-4)
    assert frames[0] == [f for _, (_, f) in expected]


def test_a_small_beam_finds_the_most_probable_sequence_of_a_trained_like_model():
    """Where greedy search misses (4 of these 12 cases) the beam still finds it; an
    untrained model, whose mass lies on sequences longer than the search allows, is no
    test of that."""
    greedy_misses = 0
    for seed in range(12):
        frame_logits, head = trained_like_bigram(4, 4, seed)
        lens = torch.tensor([4])
        exact = _sequence_log_probs(partial(head.lattice, frame_logits[0]), 4, 4)
        best = max(exact, key=exact.get)
        hyp = transducer_beam_search(head, frame_logits, lens, beam=4)[0][0]
        assert hyp.tokens == best, seed
        assert hyp.score <= exact[best] + 1e-5  # the alignments the beam kept, not all
        greedy_misses += transducer_greedy_search(head, frame_logits, lens)[0][0].tokens != best
    assert greedy_misses == 4


def test_beam_one_is_greedy_search_without_a_per_frame_cap():
    frame_logits, head = trained_like_bigram(12, 6, seed=0, batch=3)
    head.label_logits[1, 2] += 8.0  # label 1 is followed by label 2 on the same frame
    lens = torch.tensor([12, 5, 9])
    beam, beam_frames = transducer_beam_search(head, frame_logits, lens, beam=1,
                                               max_len_ratio=10.0, return_frames=True)
    greedy, greedy_frames = transducer_greedy_search(head, frame_logits, lens,
                                                     max_symbols_per_frame=20,
                                                     return_frames=True)
    per_frame = max(n for f in greedy_frames for n in Counter(f[0]).values())
    assert 1 < per_frame < 20, "several labels on one frame, the cap never reached"
    assert beam_frames == greedy_frames
    for b in range(3):
        assert beam[b][0].tokens == greedy[b][0].tokens
        assert beam[b][0].score == pytest.approx(greedy[b][0].score, abs=1e-5)


@pytest.mark.parametrize("prediction", ["lstm", "stateless"])
def test_padding_invariance(prediction):
    head = tiny_head(vocab_size=6, prediction=prediction, seed=8, sharpen=2.0, blank_bias=1.0)
    enc, lens = _enc([3, 10, 0, 7], seed=8)
    batched, batched_frames = transducer_beam_search(head, enc, lens, beam=5,
                                                     return_frames=True)
    for b, n in enumerate(lens.tolist()):
        alone, alone_frames = transducer_beam_search(head, enc[b: b + 1, :n], lens[b: b + 1],
                                                     beam=5, return_frames=True)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in batched[b]]
        assert [h.score for h in alone[0]] == pytest.approx([h.score for h in batched[b]],
                                                            abs=1e-5)
        assert alone_frames[0] == batched_frames[b]
    assert batched[2] == [((), 0.0)]
    scores = [h.score for h in batched[1]]
    assert scores == sorted(scores, reverse=True)
    assert len({h.tokens for h in batched[1]}) == len(batched[1]) == 5


def test_rejects_an_empty_beam():
    with pytest.raises(ValueError, match="beam must be >= 1"):
        transducer_beam_search(tiny_head(), *_enc([3]), beam=0)


def test_stopping_hopeless_utterances_early_changes_nothing(monkeypatch):
    from asrkit.decoding import transducer_beam

    frame_logits, head = trained_like_bigram(30, 6, seed=1, batch=4)
    lens = torch.tensor([30, 20, 25, 9])
    dropped = []

    def counting(live, final):
        out = drop(live, final)
        dropped.append(int((out < live).sum()))
        return out

    drop = transducer_beam._drop_hopeless
    monkeypatch.setattr(transducer_beam, "_drop_hopeless", counting)
    early = transducer_beam_search(head, frame_logits, lens, beam=3, return_frames=True)
    monkeypatch.setattr(transducer_beam, "_drop_hopeless", lambda live, final: live)
    full = transducer_beam_search(head, frame_logits, lens, beam=3, return_frames=True)
    assert sum(dropped) > 0
    assert early[1] == full[1]
    for got, expected in zip(early[0], full[0]):
        assert [h.tokens for h in got] == [h.tokens for h in expected]
        assert [h.score for h in got] == pytest.approx([h.score for h in expected], abs=1e-6)
