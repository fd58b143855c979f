import torch

from asrkit.decoding.ctc_greedy import ctc_greedy_search


def test_greedy_equals_collapsed_per_frame_argmax(ctc_reference):
    gen = torch.Generator().manual_seed(0)
    log_probs = (3 * torch.randn(4, 9, 6, generator=gen)).log_softmax(-1)
    lengths = torch.tensor([9, 5, 1, 7])
    result = ctc_greedy_search(log_probs, lengths)
    for b in range(4):
        frames = log_probs[b, : lengths[b]]
        best = frames.argmax(-1).tolist()
        (hyp,) = result[b]
        assert hyp.tokens == ctc_reference.collapse(best)
        assert abs(hyp.score - float(frames.max(-1).values.sum())) < 1e-5


def test_greedy_collapses_repeats_but_not_across_blanks():
    # frames: a a blank a b b -> "a a b"; blank everywhere -> empty
    ids = torch.tensor([[3, 3, 0, 3, 4, 4], [0, 0, 0, 0, 0, 0]])
    log_probs = torch.nn.functional.one_hot(ids, 6).float().clamp(min=1e-6).log()
    result = ctc_greedy_search(log_probs, torch.tensor([6, 6]))
    assert result[0][0].tokens == (3, 3, 4)
    assert result[1][0].tokens == ()


def test_greedy_with_zero_frames_is_empty():
    result = ctc_greedy_search(torch.randn(1, 3, 5).log_softmax(-1), torch.tensor([0]))
    assert result[0][0].tokens == () and result[0][0].score == 0.0
