import math

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


class ScriptedDecoder:
    """A stand-in for the model's attention decoder whose next-token distribution is looked
    up by the prefix emitted so far (ids: blank 0, unk 1, sos/eos 2, "a" 3, "b" 4); tokens
    not listed get 1e-9 and an unlisted prefix ends (eos) at once."""

    blank_id, sos_id, eos_id, vocab_size = 0, 2, 2, 5

    def __init__(self, table: dict[tuple[int, ...], dict[int, float]]):
        self.table = table

    def log_probs(self, prefix: tuple[int, ...]) -> torch.Tensor:
        probs = torch.full((self.vocab_size,), 1e-9, dtype=torch.float64)
        for token, p in self.table.get(prefix, {self.eos_id: 1.0}).items():
            probs[token] = p
        return (probs / probs.sum()).log().float()  # (V,)

    def decoder_step(self, tokens, enc, enc_mask, cache=None):
        """tokens (N, U) from sos -> (log-probs (N, V), a cache with one row per hypothesis)."""
        rows = [self.log_probs(tuple(row[1:])) for row in tokens.tolist()]
        return torch.stack(rows), [tokens.float()]


def _exhaustive_best(model, max_len, length_penalty=0.0, length_norm=False):
    """The best of every finished hypothesis of at most ``max_len`` tokens, enumerated:
    score = Σ log p + penalty · tokens, ranked by score / (tokens + 1) with length_norm."""
    best = None

    def walk(prefix, score):
        nonlocal best
        lp = model.log_probs(prefix).tolist()
        final = score + lp[model.eos_id]
        rank = final / (len(prefix) + 1) if length_norm else final
        if best is None or rank > best[0]:
            best = (rank, prefix, final)
        if len(prefix) < max_len:
            for token in range(model.vocab_size):
                if token not in (model.blank_id, model.eos_id):
                    walk(prefix + (token,), score + lp[token] + length_penalty)

    walk((), 0.0)
    return best[1], best[2]


# "": P(eos) 0.4 wins on the raw score (log 0.4 = -0.92); "aa": 0.35 · 0.9 · 0.9 scores
# -1.26 but -0.42 per token (eos included), so length normalisation prefers it
PREFERS_LONG_WHEN_NORMALISED = {(): {2: 0.4, 3: 0.35, 4: 0.25}, (3,): {3: 0.9, 2: 0.1},
                                (3, 3): {2: 0.9, 3: 0.1}}
# "": P(eos) 0.7 (-0.36); "aaa" is certain after "a" (P 0.2): -1.61 + 0.5 per token
PREFERS_LONG_WITH_PENALTY = {(): {2: 0.7, 3: 0.2, 4: 0.1}, (3,): {3: 1.0},
                             (3, 3): {3: 1.0}, (3, 3, 3): {2: 1.0}}


@pytest.mark.parametrize("method", ["attention", "joint"])
def test_length_norm_ranks_by_score_per_token(method):
    """With length_norm the finished hypotheses are ranked by score / (tokens + 1) and the
    search must not stop early (after step 1 the finished "" leads on the raw score)."""
    from asrkit.decoding.plan import search_methods

    model = ScriptedDecoder(PREFERS_LONG_WHEN_NORMALISED)
    enc, enc_lens = torch.zeros(1, 4, 8), torch.tensor([4])  # (B, T', D)
    ctc = torch.full((1, 4, model.vocab_size), -math.log(model.vocab_size))  # λ = 0: unused
    results = {}
    for norm in (False, True):
        search = search_methods([method], ["beam=2", "ctc_weight=0.0",
                                           f"search.{method}.length_norm={norm}"])[method]
        results[norm] = search(model, enc, enc_lens, ctc)[0]
        tokens, score = _exhaustive_best(model, 4, length_norm=norm)
        assert results[norm][0].tokens == tokens
        assert results[norm][0].score == pytest.approx(score, abs=1e-5)  # not normalised
    assert results[False][0].tokens == () and results[True][0].tokens == (3, 3)
    ranks = [h.score / (len(h.tokens) + 1) for h in results[True]]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize("method", ["attention", "joint"])
def test_positive_length_penalty_turns_early_stopping_off(method):
    """After step 1 the finished "" (-0.36) beats the live "a" (-1.61 + 0.5); with a
    positive penalty scores can rise, so the search goes on and finds "aaa" (-0.11)."""
    from asrkit.decoding.plan import search_methods

    model = ScriptedDecoder(PREFERS_LONG_WITH_PENALTY)
    enc, enc_lens = torch.zeros(1, 4, 8), torch.tensor([4])
    ctc = torch.full((1, 4, model.vocab_size), -math.log(model.vocab_size))
    for penalty, expected in ((0.0, ()), (0.5, (3, 3, 3))):
        search = search_methods([method], ["beam=2", "ctc_weight=0.0",
                                           f"search.{method}.length_penalty={penalty}"])[method]
        best = search(model, enc, enc_lens, ctc)[0][0]
        tokens, score = _exhaustive_best(model, 4, length_penalty=penalty)
        assert best.tokens == tokens == expected
        assert best.score == pytest.approx(score, abs=1e-5)
