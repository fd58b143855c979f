"""CTC greedy (best path) decoding: the most likely label per frame, repeats collapsed,
then blanks removed (Graves et al. 2006, sec. 3.2 "best path decoding").

    nbest = ctc_greedy_search(model.ctc_log_probs(enc), enc_lens)   # [[Hypothesis]] per utt
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.decoding.search import SearchMethod
from asrkit.models.mask import padding_mask


@torch.no_grad()
def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor,
                      blank_id: int = 0) -> list[NBest]:
    """log_probs (B, T, V), lengths (B,) -> per utterance a one-element N-best whose score is
    the best path's log-probability."""
    best_scores, best = log_probs.max(dim=-1)  # (B, T)
    valid = padding_mask(lengths.to(best.device), best.size(1))  # (B, T)
    previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=-1)  # label at t-1
    keep = valid & (best != blank_id) & (best != previous)  # (B, T)
    scores = best_scores.masked_fill(~valid, 0.0).sum(dim=1)  # (B,)
    best, keep, scores = best.cpu(), keep.cpu(), scores.cpu()
    return [[Hypothesis(tuple(best[b][keep[b]].tolist()), float(scores[b]))]
            for b in range(best.size(0))]


@dataclass(frozen=True)
class CTCGreedySearch(SearchMethod):
    """``ctc_greedy``: the best path, collapsed."""

    needs_ctc = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return ctc_greedy_search(ctc_log_probs, enc_lens, model.blank_id)
