"""Paired bootstrap resampling over utterances for the WER difference of two systems.

Bisani & Ney, "Bootstrap estimates for confidence intervals in ASR performance evaluation"
(ICASSP 2004): draw the test set's utterances with replacement R times; on each draw both
systems are scored on the same utterances, giving a sample of WER_B − WER_A (each WER is the
errors summed over the drawn utterances divided by their reference words). The 95 %
confidence interval is the 2.5th–97.5th percentile of those samples; the difference is
significant when the interval excludes 0. ``prob_b_better`` is the share of draws on which B
has the lower WER (Bisani & Ney's "probability of improvement"). A draw of only utterances
without reference words has no WER: it is left out of the interval and the probability
(they are taken over the draws that have words), and a test set without any reference word
is refused.

    result = paired_bootstrap(errors_a, errors_b, ref_words)   # per-utterance integer arrays
    result.delta, result.ci_low, result.ci_high, result.significant
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    wer_a: float          # percent, on the full set
    wer_b: float
    delta: float          # wer_b - wer_a, percent points
    ci_low: float
    ci_high: float
    prob_b_better: float
    num_samples: int
    confidence: float

    @property
    def significant(self) -> bool:
        return self.ci_low > 0.0 or self.ci_high < 0.0


def paired_bootstrap(errors_a: Sequence[int], errors_b: Sequence[int],
                     ref_words: Sequence[int], num_samples: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> BootstrapResult:
    """errors_a/errors_b: each system's errors per utterance, ref_words: reference words per
    utterance, all in the same utterance order."""
    e_a = np.asarray(errors_a, dtype=np.float64)
    e_b = np.asarray(errors_b, dtype=np.float64)
    n = np.asarray(ref_words, dtype=np.float64)
    if not (e_a.shape == e_b.shape == n.shape) or e_a.ndim != 1:
        raise ValueError(f"paired bootstrap needs equal-length per-utterance arrays, got "
                         f"{e_a.shape}, {e_b.shape}, {n.shape}")
    if e_a.size == 0:
        raise ValueError("paired bootstrap needs at least one utterance")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_samples < 1:
        raise ValueError(f"the bootstrap needs at least one resample, got {num_samples}")
    total_words = n.sum()
    if total_words <= 0:
        raise ValueError("paired bootstrap needs reference words; these utterances have none")
    rng = np.random.default_rng(seed)
    deltas = np.empty(num_samples)
    b_better = 0
    chunk = max(1, 2_000_000 // e_a.size)  # bound the (draws, utterances) count matrix
    done = 0
    while done < num_samples:
        size = min(chunk, num_samples - done)
        # how often each utterance is drawn in each resample: (size, utterances)
        counts = rng.multinomial(e_a.size, np.full(e_a.size, 1.0 / e_a.size), size=size)
        words = counts @ n
        with np.errstate(divide="ignore", invalid="ignore"):  # no words: nan, left out
            wer_a, wer_b = counts @ e_a / words, counts @ e_b / words
            deltas[done: done + size] = np.where(words > 0, 100.0 * (wer_b - wer_a), np.nan)
        b_better += int(((wer_b < wer_a) & (words > 0)).sum())
        done += size
    valid = deltas[~np.isnan(deltas)]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(valid, [alpha, 1.0 - alpha]) if valid.size else (np.nan, np.nan)
    full_a, full_b = 100.0 * e_a.sum() / total_words, 100.0 * e_b.sum() / total_words
    return BootstrapResult(full_a, full_b, full_b - full_a, float(low), float(high),
                           b_better / max(valid.size, 1), num_samples, confidence)
