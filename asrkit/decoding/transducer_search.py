"""The transducer's search methods for ``asrkit decode`` (asrkit.decoding.search): greedy,
modified beam and the standard beam search over ``model.transducer``, and for hybrid models
(transducer + CTC + attention decoder) rescoring of the transducer's N-best with the other
branches:

    score(y) = transducer_weight * log P_transducer(y | x) + ctc_weight * log P_ctc(y | x)
             + (1 - transducer_weight - ctc_weight) * log P_att(y, eos | x)

(as attention rescoring re-ranks a CTC N-best; the weights are the method's options, the CTC
term needs the model's CTC head, the attention term its decoder). A hypothesis that CTC cannot
emit in its frames (more labels and repeats than frames: a transducer can emit several labels
on one frame) has log P_ctc = -inf and, with ctc_weight > 0, ranks last. Each class sits here, as
the three searches are one family; conf/search/transducer_*.yaml configure them.
``rescore_transducer_nbest`` is that re-ranking of given N-best lists (the streaming
recogniser's ``--rescore`` after a transducer search uses it too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from asrkit.arg_types import PositiveFloat, PositiveInt, UnitInterval
from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.decoding.search import SearchMethod
from asrkit.decoding.transducer_beam import transducer_beam_search
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import transducer_modified_beam_search


class TransducerMethod(SearchMethod):
    needs_transducer = True


@dataclass(frozen=True)
class TransducerGreedySearch(TransducerMethod):
    """``transducer_greedy``: the best label per joint, up to ``max_symbols_per_frame`` labels
    per encoder frame."""

    max_symbols_per_frame: PositiveInt = 4

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return transducer_greedy_search(model.transducer, enc, enc_lens,
                                        self.max_symbols_per_frame)


@dataclass(frozen=True)
class TransducerModifiedBeamSearch(TransducerMethod):
    """``transducer_modified_beam``: icefall's frame-synchronous beam, one label per frame."""

    beam: PositiveInt = 4

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return transducer_modified_beam_search(model.transducer, enc, enc_lens, self.beam)


@dataclass(frozen=True)
class TransducerBeamSearch(TransducerMethod):
    """``transducer_beam``: alignment-length synchronous beam search (Saon et al. 2020) over
    the whole lattice; at most ``max_len_ratio`` x encoder frames labels."""

    beam: PositiveInt = 4
    max_len_ratio: PositiveFloat = 1.0

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return transducer_beam_search(model.transducer, enc, enc_lens, self.beam,
                                      max_len_ratio=self.max_len_ratio)


@dataclass(frozen=True)
class TransducerRescoring(TransducerMethod):
    """``transducer_rescoring``: the ``beam``-best of the transducer's beam search re-ranked
    with CTC (``ctc_weight``) and the attention decoder (the rest) of a hybrid model."""

    beam: PositiveInt = 4
    transducer_weight: UnitInterval = 0.5
    ctc_weight: UnitInterval = 0.2
    needs_decoder = True
    needs_ctc = True

    def __post_init__(self) -> None:  # when the config is read, before any decoding
        check_rescoring_weights(self.transducer_weight, self.ctc_weight)

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        lists = transducer_beam_search(model.transducer, enc, enc_lens, self.beam)
        return rescore_transducer_nbest(model, enc, enc_lens, ctc_log_probs, lists,
                                        self.transducer_weight, self.ctc_weight)


def check_rescoring_weights(transducer_weight: float, ctc_weight: float) -> None:
    """A ValueError unless the attention decoder's weight 1 - both is >= 0."""
    if 1.0 - transducer_weight - ctc_weight < -1e-9:
        raise ValueError(f"search.transducer_rescoring: transducer_weight + ctc_weight "
                         f"must be <= 1, got {transducer_weight + ctc_weight}")


@torch.no_grad()
def rescore_transducer_nbest(model, enc: torch.Tensor, enc_lens: torch.Tensor,
                             ctc_log_probs: torch.Tensor | None, lists: list[NBest],
                             transducer_weight: float, ctc_weight: float) -> list[NBest]:
    """Transducer N-best lists (scores: the search's log P_transducer) re-ranked by the
    combined score of the module docstring, best first. ctc_log_probs (B, T', V), or None
    for a model without a CTC head (then ``ctc_weight`` must be 0)."""
    check_rescoring_weights(transducer_weight, ctc_weight)
    if ctc_log_probs is None and ctc_weight > 0:
        raise ValueError(f"ctc_weight: {ctc_weight} > 0 but the model has no CTC head")
    owner = [b for b, hyps in enumerate(lists) for _ in hyps]
    hyps = [h for hyps in lists for h in hyps]
    if not hyps:
        return lists
    index = torch.tensor(owner, device=enc.device)
    att_weight = 1.0 - transducer_weight - ctc_weight
    att = ctc = torch.zeros(len(hyps))  # a term whose weight is 0 is not computed
    if att_weight > 0:
        att = torch.cat(model.score_nbest(enc, enc_lens, [[h.tokens for h in utt_hyps]
                                                          for utt_hyps in lists])).cpu()
    if ctc_weight > 0:  # (0 x -inf would be nan)
        ctc = _ctc_scores(ctc_log_probs[index], enc_lens[index], [h.tokens for h in hyps],
                          model.blank_id).cpu()
    combined = (transducer_weight * torch.tensor([h.score for h in hyps])
                + ctc_weight * ctc + att_weight * att)
    results: list[NBest] = [[] for _ in lists]
    for b, hyp, score in zip(owner, hyps, combined.tolist(), strict=True):
        results[b].append(Hypothesis(hyp.tokens, score))
    return [sorted(r, key=lambda h: -h.score) for r in results]


def _ctc_scores(log_probs: torch.Tensor, lengths: torch.Tensor,
                hyps: list[tuple[int, ...]], blank_id: int) -> torch.Tensor:
    """log P_ctc(y | x) of each hypothesis (N,), one batched CTC forward pass; -inf for a
    hypothesis no CTC path can emit in its frames (a transducer may emit several labels on
    one frame; CTC needs a frame per label and a blank between repeats)."""
    targets = torch.zeros(len(hyps), max((len(h) for h in hyps), default=1) or 1,
                          dtype=torch.long, device=log_probs.device)
    for i, hyp in enumerate(hyps):
        targets[i, : len(hyp)] = torch.tensor(hyp, dtype=torch.long)
    target_lens = torch.tensor([len(h) for h in hyps], device=log_probs.device)
    nll = F.ctc_loss(log_probs.float().transpose(0, 1), targets, lengths, target_lens,
                     blank=blank_id, reduction="none")
    return -nll
