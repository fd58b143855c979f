import pytest
import torch

from asrkit.decoding.attention_beam import attention_beam_search


def _encoded(model, lengths, seed=0, bins=80):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), bins, generator=gen)
    with torch.no_grad():
        return model.encode(feats, torch.tensor(lengths))


def _greedy(model, enc, enc_len):
    """Greedy attention decoding with full (uncached) decoder passes: the argmax token
    (never blank) until eos, forced to end after enc_len tokens."""
    enc, mask = enc[None, :enc_len], torch.ones(1, enc_len, dtype=torch.bool)
    tokens = [model.sos_id]
    for step in range(enc_len + 1):
        logits = model.decoder(torch.tensor([tokens]), torch.ones(1, len(tokens), dtype=torch.bool),
                               enc, mask)[0, -1]
        logits[model.blank_id] = float("-inf")
        token = model.eos_id if step == enc_len else int(logits.argmax())
        if token == model.eos_id:
            break
        tokens.append(token)
    return tuple(tokens[1:])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy_decoding(tiny_model, seed):
    model, _ = tiny_model(seed=seed, input_layer="linear", mel_bins=8)
    enc, enc_lens = _encoded(model, [9, 6, 2], seed, bins=8)
    with torch.no_grad():
        result = attention_beam_search(model, enc, enc_lens, beam=1)
        for b in range(3):
            assert result[b][0].tokens == _greedy(model, enc[b], int(enc_lens[b]))


def test_scores_are_the_decoder_log_likelihoods(tiny_model):
    model, _ = tiny_model(seed=3, input_layer="linear", mel_bins=8)
    enc, enc_lens = _encoded(model, [10, 7], bins=8)
    with torch.no_grad():
        result = attention_beam_search(model, enc, enc_lens, beam=4, early_stop=False)
        for b, nbest in enumerate(result):
            assert len(nbest) == 4
            scores = model.score_hypotheses(enc[b: b + 1], enc_lens[b: b + 1],
                                            [list(h.tokens) for h in nbest])
            torch.testing.assert_close(scores, torch.tensor([h.score for h in nbest]),
                                       atol=1e-4, rtol=1e-4)
            assert all(len(h.tokens) <= int(enc_lens[b]) for h in nbest)
            assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    greedy = attention_beam_search(model, enc, enc_lens, beam=1)
    assert all(result[b][0].score >= greedy[b][0].score - 1e-5 for b in range(2))


def test_batched_equals_per_utterance(tiny_model):
    model, _ = tiny_model(seed=4, input_layer="linear", mel_bins=8)
    enc, enc_lens = _encoded(model, [11, 4, 8], bins=8)
    with torch.no_grad():
        batched = attention_beam_search(model, enc, enc_lens, beam=3)
        for b in range(3):
            n = int(enc_lens[b])
            alone = attention_beam_search(model, enc[b: b + 1, :n], enc_lens[b: b + 1], beam=3)[0]
            assert [h.tokens for h in alone] == [h.tokens for h in batched[b]]
            assert [h.score for h in alone] == pytest.approx([h.score for h in batched[b]],
                                                             abs=1e-4)


def test_length_penalty_and_max_length(tiny_model):
    model, _ = tiny_model(seed=5, input_layer="linear", mel_bins=8)
    enc, enc_lens = _encoded(model, [6], bins=8)
    with torch.no_grad():
        plain = attention_beam_search(model, enc, enc_lens, beam=3)[0]
        bonus = attention_beam_search(model, enc, enc_lens, beam=3, length_penalty=5.0)[0]
        att = model.score_hypotheses(enc, enc_lens, [list(h.tokens) for h in bonus])
        capped = attention_beam_search(model, enc, enc_lens, beam=3, max_len=torch.tensor([2]))
    # a large bonus per token drives hypotheses to the length limit; score = att + bonus·len
    assert len(bonus[0].tokens) == 6 >= len(plain[0].tokens)
    for hyp, a in zip(bonus, att.tolist()):
        assert hyp.score == pytest.approx(a + 5.0 * len(hyp.tokens), abs=1e-4)
    assert all(len(h.tokens) <= 2 for h in capped[0])


def test_zero_encoder_frames_is_rejected(tiny_model):
    model, _ = tiny_model(input_layer="linear", mel_bins=8)
    enc, _ = _encoded(model, [3], bins=8)
    with pytest.raises(ValueError, match="encoder frame"):
        attention_beam_search(model, enc, torch.tensor([0]))


@pytest.mark.parametrize("eos_bias", [2.0, 4.0, 6.0])
def test_early_stop_keeps_the_best_hypothesis(tiny_model, eos_bias):
    """With eos likely, finished hypotheses soon beat every live one: stopping there gives
    the full search's 1-best (scores never rise) for attention and joint search."""
    from asrkit.decoding.joint_ctc_attention import joint_ctc_attention_search

    model, _ = tiny_model(seed=6, input_layer="linear", mel_bins=8, sharpen=2.0)
    with torch.no_grad():
        model.decoder.output_layer.bias[model.eos_id] += eos_bias
    enc, enc_lens = _encoded(model, [12, 9, 5], seed=6, bins=8)
    with torch.no_grad():
        ctc = model.ctc_log_probs(enc)
    for search in (
        lambda **kw: attention_beam_search(model, enc, enc_lens, beam=4, **kw),
        lambda **kw: joint_ctc_attention_search(model, enc, enc_lens, ctc, beam=4,
                                                ctc_weight=0.3, **kw),
    ):
        full, early = search(early_stop=False), search(early_stop=True)
        for f, e in zip(full, early):
            assert e[0].tokens == f[0].tokens
            assert e[0].score == pytest.approx(f[0].score, abs=1e-5)
            assert 1 <= len(e) <= len(f)
