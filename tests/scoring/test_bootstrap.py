import numpy as np
import pytest

from asrkit.scoring.bootstrap import paired_bootstrap


def test_identical_systems_have_zero_difference():
    errors = [1, 0, 3, 2, 0, 1]
    result = paired_bootstrap(errors, errors, [5, 4, 6, 7, 3, 5])
    assert result.delta == result.ci_low == result.ci_high == 0.0
    assert not result.significant and result.prob_b_better == 0.0


def test_a_clearly_better_system_is_significant_and_the_ci_holds_the_delta():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 20, size=300)
    errors_a = rng.binomial(words, 0.20)
    errors_b = rng.binomial(words, 0.10)
    result = paired_bootstrap(errors_a, errors_b, words, num_samples=2000, seed=1)
    assert result.wer_a == pytest.approx(100 * errors_a.sum() / words.sum())
    assert result.delta == pytest.approx(result.wer_b - result.wer_a)
    assert result.ci_low < result.delta < result.ci_high < 0
    assert result.significant and result.prob_b_better > 0.99
    # the same seed gives the same interval; chunking does not change it
    again = paired_bootstrap(errors_a, errors_b, words, num_samples=2000, seed=1)
    assert (again.ci_low, again.ci_high) == (result.ci_low, result.ci_high)


def test_a_small_noisy_difference_is_not_significant():
    words = [10] * 20
    errors_a = [1, 0, 2, 1, 0, 3, 1, 0, 2, 1, 1, 0, 2, 1, 0, 3, 1, 0, 2, 1]
    errors_b = [0, 1, 2, 1, 1, 2, 1, 0, 2, 2, 1, 0, 1, 1, 1, 3, 0, 0, 2, 1]
    result = paired_bootstrap(errors_a, errors_b, words)
    assert result.ci_low < 0 < result.ci_high and not result.significant


def test_the_interval_matches_a_naive_resampling_loop():
    rng = np.random.default_rng(3)
    words = rng.integers(3, 15, size=60)
    errors_a, errors_b = rng.binomial(words, 0.3), rng.binomial(words, 0.25)
    naive = []
    draw = np.random.default_rng(7)
    for _ in range(4000):
        idx = draw.integers(0, 60, size=60)
        naive.append(100 * (errors_b[idx].sum() - errors_a[idx].sum()) / words[idx].sum())
    low, high = np.quantile(naive, [0.025, 0.975])
    result = paired_bootstrap(errors_a, errors_b, words, num_samples=4000)
    assert result.ci_low == pytest.approx(low, abs=0.6)
    assert result.ci_high == pytest.approx(high, abs=0.6)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1, 2], [1], [3, 4])
    with pytest.raises(ValueError, match="at least one"):
        paired_bootstrap([], [], [])
    with pytest.raises(ValueError, match="at least one resample, got 0"):
        paired_bootstrap([1], [2], [3], num_samples=0)


def test_draws_without_reference_words_are_left_out_and_a_set_without_any_is_refused():
    """Utterances with no reference words (insertions only): a draw of only those has no
    WER. Checked against a naive loop that redraws such a draw."""
    rng = np.random.default_rng(1)
    words = np.where(rng.random(40) < 0.15, rng.integers(1, 6, size=40), 0)
    errors_a, errors_b = rng.integers(0, 4, size=40), rng.integers(0, 3, size=40)
    draw, naive = np.random.default_rng(2), []
    while len(naive) < 20000:
        idx = draw.integers(0, 40, size=40)
        if words[idx].sum():
            naive.append(100 * (errors_b[idx].sum() - errors_a[idx].sum()) / words[idx].sum())
    result = paired_bootstrap(errors_a, errors_b, words, num_samples=20000)
    low, high = np.quantile(naive, [0.025, 0.975])
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=0.05)
    assert result.prob_b_better == pytest.approx(np.mean(np.array(naive) < 0), abs=0.01)
    with pytest.raises(ValueError, match="needs reference words"):
        paired_bootstrap([1, 0], [0, 0], [0, 0])
