import jiwer
import pytest
import torch

from asrkit.scoring.wer import score_texts
from asrkit.training.validation import StridedBatches, _combine, _greedy, error_counts


def test_dev_hypotheses_of_a_ctc_model_merge_repeats_and_drop_blanks():
    best = torch.tensor([[0, 5, 5, 0, 5, 7, 7, 0], [3, 3, 0, 4, 9, 9, 9, 9]])

    class CTCModel(torch.nn.Module):
        ctc = torch.nn.Identity()

        def ctc_log_probs(self, enc):
            return torch.nn.functional.one_hot(best, 10).float().log()

    assert _greedy(CTCModel(), torch.zeros(2, 8, 4), torch.tensor([8, 4]), 0) == [
        [5, 5, 7], [3, 4]]


def test_error_counts_agree_with_jiwer_where_levenshtein_and_sclite_agree():
    refs = ["the cat sat", "a dog ran home", "yes"]
    hyps = ["the cat sat down", "a dog home", ""]
    counts = error_counts(refs, hyps)
    assert 100 * counts["word_errors"] / counts["words"] == pytest.approx(
        100 * jiwer.wer(refs, hyps))
    nospace = [r.replace(" ", "") for r in refs], [h.replace(" ", "") for h in hyps]
    assert counts["char_errors"] / counts["chars"] == pytest.approx(jiwer.cer(*nospace))


def test_dev_wer_counts_errors_as_the_reports_do():
    """"a a a b b b b" / "a c c c a a": sclite (and asrkit's reports) count 7 errors where
    Levenshtein counts 6; dev WER follows the reports."""
    refs, hyps = ["a a a b b b b", "the cat"], ["a c c c a a", "the hat"]
    counts = error_counts(refs, hyps)
    report = score_texts(dict(enumerate(refs)), dict(enumerate(hyps)))
    assert counts["word_errors"] == report.words.sub + report.words.dele + report.words.ins == 8
    assert jiwer.process_words(refs[0], hyps[0]).wer * 7 == pytest.approx(6)
    assert counts["char_errors"] == report.chars.sub + report.chars.dele + report.chars.ins


def test_shares_of_ranks_combine_to_the_whole():
    share_a = ({"loss": [30.0, 3.0], "acc": [8.0, 10.0]},
               {"word_errors": 2, "words": 10, "char_errors": 3, "chars": 40, "utterances": 3})
    share_b = ({"loss": [10.0, 2.0], "acc": [2.0, 10.0]},
               {"word_errors": 3, "words": 10, "char_errors": 1, "chars": 40, "utterances": 2})
    metrics = _combine([share_a, share_b])
    assert metrics["loss"] == pytest.approx(8.0) and metrics["acc"] == pytest.approx(0.5)
    assert metrics["wer"] == pytest.approx(25.0) and metrics["cer"] == pytest.approx(5.0)
    assert metrics["utterances"] == 5


def test_strided_batches_cover_every_batch_once():
    class Sampler:
        epoch = 0

        def rank_batches(self):
            return [[i] for i in range(7)]

    shares = [list(StridedBatches(Sampler(), r, 3)) for r in range(3)]
    assert sorted(b[0] for share in shares for b in share) == list(range(7))
    assert [len(StridedBatches(Sampler(), r, 3)) for r in range(3)] == [3, 2, 2]
