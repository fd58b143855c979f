import math

import pytest
import torch

from asrkit.decoding.ctc_prefix_score import CTCPrefixScorer

EOS = 2


def test_prefix_scores_equal_sums_over_enumerated_paths(ctc_reference):
    """ψ(g·c) for every candidate c at two steps equals the summed probability of all
    labellings starting with g·c; ψ(g·eos) is P(g) itself; increments telescope."""
    gen = torch.Generator().manual_seed(0)
    frames, vocab = 5, 5
    log_probs = (2 * torch.randn(1, frames, vocab, generator=gen)).log_softmax(-1)
    exact = ctc_reference.labelling_log_probs(log_probs[0])
    scorer = CTCPrefixScorer(log_probs, torch.tensor([frames]), beam=1, eos_id=EOS)
    state = scorer.initial_state()
    candidates = torch.tensor([[1, 3, 4, EOS]])
    prefix: tuple[int, ...] = ()
    for step_label in (3, 3):  # g = () then (3,), then (3, 3)
        delta, psi, r = scorer.score(state, candidates)
        for j, c in enumerate(candidates[0].tolist()):
            if c == EOS:
                want = exact.get(prefix, float("-inf"))
            else:
                want = ctc_reference.prefix_log_prob(exact, (*prefix, c))
            assert float(psi[0, j]) == pytest.approx(want, abs=1e-4)
            assert float(delta[0, j]) == pytest.approx(
                want - ctc_reference.prefix_log_prob(exact, prefix), abs=1e-4)
        slot = candidates[0].tolist().index(step_label)
        state = scorer.select(state, candidates, psi, r, torch.tensor([0]), torch.tensor([slot]))
        prefix = (*prefix, step_label)
    assert float(state.psi[0]) == pytest.approx(
        ctc_reference.prefix_log_prob(exact, prefix), abs=1e-4)


def test_padded_frames_do_not_change_scores():
    gen = torch.Generator().manual_seed(1)
    log_probs = torch.randn(2, 7, 6, generator=gen).log_softmax(-1)
    lengths = torch.tensor([7, 4])
    candidates = torch.tensor([[3, 4, EOS], [3, 4, EOS]])
    both = CTCPrefixScorer(log_probs, lengths, beam=1, eos_id=EOS)
    alone = CTCPrefixScorer(log_probs[1:, :4], lengths[1:], beam=1, eos_id=EOS)
    _, psi_both, _ = both.score(both.initial_state(), candidates)
    _, psi_alone, _ = alone.score(alone.initial_state(), candidates[1:])
    torch.testing.assert_close(psi_both[1:], psi_alone, atol=1e-5, rtol=1e-5)
    assert float(psi_alone[0, 2]) == pytest.approx(float(log_probs[1, :4, 0].sum()), abs=1e-5)
    assert math.isfinite(float(psi_both[0, 0]))
