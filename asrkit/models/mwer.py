"""Minimum word error rate loss over an N-best list (Prabhavalkar et al. 2018,
arXiv 1712.01818, eq. 6-8; Chiu et al. 2018 sec. 2.5: 6.7 -> 5.8 WER on voice search):

    L_MWER = sum_{y in Nbest} P^(y|x) * (W(y, y*) - W^)

P^ the model probabilities renormalised over the N-best (a softmax of the hypotheses'
log-probabilities), W the word errors of each hypothesis against the reference and W^ their
mean over the N-best (the baseline that lowers the variance; it does not change the
gradient because the P^ sum to 1). The full objective adds lambda * L_CE (lambda = 0.01) to
keep the model close to the reference: ``ASRModel.forward_mwer`` does that and scores the
hypotheses with the attention decoder. Averaged over the utterances of a batch.

    loss = mwer_loss(hyp_log_probs, word_errors, mask)   # (B, N), (B, N), (B, N) bool
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def mwer_loss(hyp_log_probs: torch.Tensor, word_errors: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """hyp_log_probs (B, N) log P(y|x) of each hypothesis, word_errors (B, N) its word
    errors, mask (B, N) bool (True = a hypothesis; utterances may have fewer than N) ->
    scalar: the mean over utterances of sum_y P^(y) (W(y) - W^)."""
    if mask is None:
        mask = torch.ones_like(hyp_log_probs, dtype=torch.bool)
    if not bool(mask.any(-1).all()):
        raise ValueError("mwer_loss: an utterance has no hypothesis in its N-best")
    log_probs = hyp_log_probs.float().masked_fill(~mask, float("-inf"))
    posterior = log_probs.softmax(dim=-1)  # P^, (B, N), zero where masked
    errors = word_errors.float().masked_fill(~mask, 0.0)
    mean_errors = errors.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True)  # W^, (B, 1)
    per_utterance = (posterior * (errors - mean_errors)).masked_fill(~mask, 0.0).sum(-1)
    return per_utterance.mean()


def expected_word_errors(hyp_log_probs: torch.Tensor, word_errors: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
    """Mean over utterances of sum_y P^(y) W(y) (for logging; no baseline)."""
    posterior = hyp_log_probs.float().masked_fill(~mask, float("-inf")).softmax(-1)
    return (posterior * word_errors.float().masked_fill(~mask, 0.0)).sum(-1).mean()


def pad_nbest(nbest: Sequence[Sequence[Sequence[int]]],
              word_errors: Sequence[Sequence[float]] | torch.Tensor,
              ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Per-utterance N-best lists (token ids, no sos/eos; at most N each) and their word
    errors -> (the hypotheses flattened utterance by utterance, each list padded to N with
    an empty hypothesis, word errors (B, N), mask (B, N) bool)."""
    width = max(len(hyps) for hyps in nbest)
    if width == 0:
        raise ValueError("pad_nbest: every N-best list is empty")
    flat: list[list[int]] = []
    errors = torch.zeros(len(nbest), width)
    mask = torch.zeros(len(nbest), width, dtype=torch.bool)
    for b, hyps in enumerate(nbest):
        if len(word_errors[b]) < len(hyps):
            raise ValueError(f"pad_nbest: utterance {b} has {len(hyps)} hypotheses but "
                             f"{len(word_errors[b])} word-error counts")
        flat += [list(h) for h in hyps] + [[] for _ in range(width - len(hyps))]
        mask[b, : len(hyps)] = True
        errors[b, : len(hyps)] = torch.as_tensor(
            [float(word_errors[b][n]) for n in range(len(hyps))])
    return flat, errors, mask
