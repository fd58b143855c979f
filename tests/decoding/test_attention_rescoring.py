import pytest
import torch

from asrkit.decoding.attention_rescoring import attention_rescoring
from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search


def _setup(tiny_model, lengths, seed=0):
    model, _ = tiny_model(seed=seed, input_layer="linear", mel_bins=8, sharpen=2.0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        enc, enc_lens = model.encode(torch.randn(len(lengths), max(lengths), 8, generator=gen),
                                     torch.tensor(lengths))
        return model, enc, enc_lens, model.ctc_log_probs(enc)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 1.0])
def test_rescoring_ranks_the_ctc_nbest_by_the_combined_score(tiny_model, weight):
    model, enc, enc_lens, ctc = _setup(tiny_model, [10, 6, 8])
    ctc_nbest = ctc_prefix_beam_search(ctc, enc_lens, beam=5)
    result = attention_rescoring(model, enc, enc_lens, ctc, beam=5, ctc_weight=weight)
    with torch.no_grad():
        for b in range(3):
            hyps = [list(h.tokens) for h in ctc_nbest[b]]
            att = model.score_hypotheses(enc[b: b + 1], enc_lens[b: b + 1], hyps).tolist()
            combined = {tuple(h): weight * c.score + (1 - weight) * a
                        for h, c, a in zip(hyps, ctc_nbest[b], att)}
            assert {h.tokens for h in result[b]} == set(combined)
            ranked = sorted(combined, key=lambda t: -combined[t])
            assert [h.tokens for h in result[b]] == ranked
            for hyp in result[b]:
                assert hyp.score == pytest.approx(combined[hyp.tokens], abs=1e-4)
    if weight == 1.0:
        assert [[h.tokens for h in n] for n in result] == [[h.tokens for h in n]
                                                           for n in ctc_nbest]


def test_rescoring_handles_the_empty_hypothesis(tiny_model):
    model, enc, enc_lens, _ = _setup(tiny_model, [5])
    blank_only = torch.full((1, 5, model.vocab_size), -30.0)
    blank_only[..., 0] = 0.0
    result = attention_rescoring(model, enc, enc_lens, blank_only, beam=3)
    assert result[0][0].tokens == ()


def test_rescoring_beam_sets_the_nbest_size_apart_from_beam(tiny_model):
    from asrkit.config import ConfigError
    from asrkit.decoding.plan import search_methods

    model, enc, enc_lens, ctc = _setup(tiny_model, [10, 6, 8])
    wide = search_methods(["attention_rescoring"],
                          ["beam=2", "search.attention_rescoring.beam=6"])["attention_rescoring"]
    assert wide(model, enc, enc_lens, ctc) == attention_rescoring(model, enc, enc_lens, ctc,
                                                                  beam=6, ctc_weight=0.3)
    assert max(len(n) for n in wide(model, enc, enc_lens, ctc)) > 2  # the N-best of 6
    plain = search_methods(["attention_rescoring"], ["beam=2"])["attention_rescoring"]
    assert plain(model, enc, enc_lens, ctc) == attention_rescoring(model, enc, enc_lens, ctc,
                                                                   beam=2, ctc_weight=0.3)
    assert wide.settings()["beam"] == 6 and plain.settings()["beam"] == 2
    with pytest.raises(ConfigError, match="search.attention_rescoring.beam: must be > 0"):
        search_methods(["attention_rescoring"], ["search.attention_rescoring.beam=0"])
