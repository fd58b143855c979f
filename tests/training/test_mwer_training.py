"""MWER fine-tuning as a trainer mode (trainer.mwer.enabled=true): the N-best lists and word
errors it makes, and a fine-tuning run from a trained model's weights."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.config import ConfigError, compose_train_config
from asrkit.models.build import build_model
from asrkit.scoring.align import error_counts
from asrkit.scoring.wer import score_texts
from asrkit.text.registry import load_tokenizer
from asrkit.training.mwer_nbest import MwerNBest
from asrkit.training.preflight import check_train_config
from asrkit.training.trainer import Trainer


@pytest.mark.parametrize("ref, hyp, errors", [
    ("the cat sat", "the cat sat", 0),
    ("the cat sat", "the bat sat", 1),
    ("the cat sat", "cat sat", 1),
    ("the cat sat", "the cat sat down", 1),
    ("the cat sat", "", 3),
    ("", "a b", 2),
    ("a b c d", "b a d c e", 3),   # insert b, a, b -> d, c, d -> e
])
def test_word_errors_are_the_scorers(ref, hyp, errors):
    assert error_counts([ref.split()], [hyp.split()]) == [errors]


def _reference_errors(ref: str, hyp: str) -> int:
    """The reports' count (asrkit decode's wer.json: sclite's alignment, checked against the
    sclite binary in tests/scoring): MWER counts errors as the results are counted."""
    result = score_texts({"u": ref}, {"u": hyp})
    return result.words.sub + result.words.dele + result.words.ins


def test_nbest_lists_and_word_errors(corpus, tmp_path):
    config = corpus.config(tmp_path / "exp")
    tokenizer = load_tokenizer(corpus.tokenizer)
    torch.manual_seed(0)
    model = build_model(config, tokenizer.vocab_size).train()
    texts = ["the old goats visit the islands", "who cleans the bags"]
    ids = [tokenizer.encode(t) for t in texts]
    tokens = torch.full((2, max(map(len, ids))), -1)
    for row, seq in zip(tokens, ids):
        row[: len(seq)] = torch.tensor(seq)
    token_lens = torch.tensor([len(s) for s in ids])
    feats, feat_lens = torch.randn(2, 120, 80), torch.tensor([120, 90])

    nbest, errors = MwerNBest(model, tokenizer, nbest=4, beam=6)(feats, feat_lens, tokens,
                                                                 token_lens)
    assert model.training  # the search ran in eval mode and the mode was restored
    assert len(nbest) == len(errors) == 2
    for text, hyps, errs in zip(texts, nbest, errors):
        assert len(hyps) == len(errs) == 4  # early_stop=False: a full N-best
        assert len(set(hyps)) == 4
        assert errs == [_reference_errors(text, tokenizer.decode(h)) for h in hyps]


def test_mwer_config_errors(corpus, tmp_path):
    with pytest.raises(ConfigError, match="^trainer.mwer.beam"):
        check_train_config(corpus.config(tmp_path / "e", "trainer.mwer.enabled=true",
                                         "trainer.mwer.beam=2"))
    ctc_only = [o for o in corpus.overrides(tmp_path / "e", "trainer.mwer.enabled=true",
                                            "decoder=none")
                if not o.startswith(("decoder.", "+experiment="))]  # the preset sets decoder.*
    with pytest.raises(ConfigError, match="^trainer.mwer.enabled.*decoder"):
        check_train_config(compose_train_config(ctc_only))
    with pytest.raises(ConfigError, match="^trainer.mwer.enabled.*compile"):
        check_train_config(corpus.config(tmp_path / "e", "trainer.mwer.enabled=true",
                                         "trainer.compile=true"))


def test_mwer_on_a_model_with_a_transducer_says_it_leaves_it_out(caplog):
    from types import SimpleNamespace

    from asrkit.training.mwer_nbest import MwerNBest

    tcfg = {"mwer": {"enabled": True, "nbest": 4, "beam": 4}, "init_from": "a.pt"}
    for transducer, warned in ((None, False), (object(), True)):
        caplog.clear()
        model = SimpleNamespace(transducer=transducer, mwer_ce_weight=0.01)
        with caplog.at_level("WARNING", logger="asrkit"):
            assert MwerNBest.from_trainer_config(model, None, tcfg) is not None
        assert ("MWER fine-tuning leaves the transducer out" in caplog.text) == warned


def _train(config: dict) -> int:
    trainer = Trainer(config)
    trainer.setup()
    try:
        return trainer.train()
    finally:
        trainer.cleanup()


def test_mwer_fine_tuning_from_a_trained_model(corpus, tmp_path):
    base = tmp_path / "base"
    assert _train(corpus.config(base, "trainer.max_epochs=2", "optim.lr=0.005")) == 0
    start = base / "checkpoints" / "epoch_2.pt"
    exp = tmp_path / "mwer"
    assert _train(corpus.config(exp, "trainer.max_epochs=1", f"trainer.init_from={start}",
                                "trainer.mwer.enabled=true", "optim.lr=0.0005")) == 0
    log = (exp / "train.log").read_text()
    assert "MWER fine-tuning: loss over the 4-best of an attention beam search of width 4" in log
    assert "init_from" in log and "without trainer.init_from" not in log
    lines = [line for line in log.splitlines() if " batch " in line]  # the train log lines
    assert lines and all("loss_mwer" in line and "mwer_expected_errors" in line
                         for line in lines)
    def values(term: str) -> list[float]:
        return [float(line.split(f"{term} ")[1].split()[0]) for line in lines]

    assert all(math.isfinite(v) for v in values("loss_mwer"))
    # errors per utterance: at most reference + hypothesis words (sclite's count may pass
    # Levenshtein's max of the two on this barely trained model's long hypotheses)
    assert all(0 < v < 80 for v in values("mwer_expected_errors"))
    before = torch.load(start, weights_only=True)["model"]
    after = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert after["epoch_complete"] and after["step"] >= 1
    changed = [k for k, v in after["model"].items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("encoder.") for k in changed)
