import pytest
import torch
import torch.nn.functional as F

from asrkit.decoding.attention_beam import attention_beam_search
from asrkit.decoding.joint_ctc_attention import joint_ctc_attention_search


def _setup(tiny_model, seed, lengths):
    model, _ = tiny_model(seed=seed, input_layer="linear", mel_bins=8, sharpen=4.0)
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), 8, generator=gen)
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, torch.tensor(lengths))
        ctc = model.ctc_log_probs(enc)
    return model, enc, enc_lens, ctc


def _ctc_log_likelihood(ctc, enc_lens, b, tokens):
    if not tokens:
        return float(ctc[b, : enc_lens[b], 0].sum())
    loss = F.ctc_loss(ctc[b: b + 1, : enc_lens[b]].transpose(0, 1), torch.tensor([tokens]),
                      enc_lens[b: b + 1], torch.tensor([len(tokens)]), reduction="sum",
                      zero_infinity=False)
    return -float(loss)


@pytest.mark.parametrize("seed", [0, 1])
def test_ctc_weight_zero_equals_attention_beam_search(tiny_model, seed):
    model, enc, enc_lens, ctc = _setup(tiny_model, seed, [9, 5, 7])
    att = attention_beam_search(model, enc, enc_lens, beam=4)
    joint = joint_ctc_attention_search(model, enc, enc_lens, ctc, beam=4, ctc_weight=0.0)
    for a, j in zip(att, joint):
        assert [h.tokens for h in a] == [h.tokens for h in j]
        assert [h.score for h in a] == pytest.approx([h.score for h in j], abs=1e-5)


@pytest.mark.parametrize("weight", [0.3, 0.7, 1.0])
def test_joint_scores_are_weighted_ctc_and_attention_likelihoods(tiny_model, weight):
    """The CTC prefix-score increments telescope: a finished hypothesis scores
    λ·log P_ctc(y | x) + (1 − λ)·log P_att(y, eos | x)."""
    model, enc, enc_lens, ctc = _setup(tiny_model, 2, [10, 6])
    result = joint_ctc_attention_search(model, enc, enc_lens, ctc, beam=3, ctc_weight=weight)
    with torch.no_grad():
        for b, nbest in enumerate(result):
            assert nbest
            att = model.score_hypotheses(enc[b: b + 1], enc_lens[b: b + 1],
                                         [list(h.tokens) for h in nbest]).tolist()
            for hyp, a in zip(nbest, att):
                want = weight * _ctc_log_likelihood(ctc, enc_lens, b, list(hyp.tokens))
                if weight < 1.0:
                    want += (1 - weight) * a
                assert hyp.score == pytest.approx(want, abs=1e-3)


def test_batched_equals_per_utterance(tiny_model):
    model, enc, enc_lens, ctc = _setup(tiny_model, 3, [12, 4, 8])
    batched = joint_ctc_attention_search(model, enc, enc_lens, ctc, beam=3, ctc_weight=0.5)
    for b in range(3):
        n = int(enc_lens[b])
        alone = joint_ctc_attention_search(model, enc[b: b + 1, :n], enc_lens[b: b + 1],
                                           ctc[b: b + 1, :n], beam=3, ctc_weight=0.5)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[b]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[b]],
                                                         abs=1e-4)
