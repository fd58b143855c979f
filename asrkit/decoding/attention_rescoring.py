"""Attention rescoring (WeNet's default, Zhang et al. 2021 "WeNet", sec. 2.2; the 3M paper's
decoding): the CTC prefix beam search N-best is rescored by the attention decoder, which sees
each whole hypothesis in one teacher-forced pass:

    score(y) = λ·log P_ctc(y | x) + (1 − λ)·log P_att(y, eos | x)

with λ = ``ctc_weight``; the hypothesis with the best combined score wins. This is the
interpolation the joint search and the training loss use (ESPnet's convention); WeNet's
rescoring adds w·log P_ctc to log P_att instead, which ranks as λ = w / (1 + w) here
(WeNet's w = 0.5 is λ = 1/3, its 0.3 is λ ≈ 0.23). Cheap and usually
the best of the CTC-based methods: the decoder sees each utterance's N-best as one prefix
tree (asrkit.models.prefix_tree), so a prefix the hypotheses share is computed once and the
cross-attention keys and values once per utterance; the utterances of a batch go through in
passes of similar lengths. Its cost is the decoder's matmuls and attention over the tree's
nodes.

    nbest = attention_rescoring(model, enc, enc_lens, model.ctc_log_probs(enc), beam=10)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asrkit.arg_types import PositiveInt, UnitInterval
from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.decoding.search import SearchMethod
from asrkit.models.asr_model import ASRModel


def attention_rescoring(model: ASRModel, enc: torch.Tensor, enc_lens: torch.Tensor,
                        ctc_log_probs: torch.Tensor, beam: int = 10, ctc_weight: float = 0.3,
                        top_k: int | None = None, nbest: int | None = None) -> list[NBest]:
    """enc (B, T', D), enc_lens (B,), ctc_log_probs (B, T', V) -> per utterance the CTC
    N-best re-ranked by the combined score (best first)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    ctc_nbest = ctc_prefix_beam_search(ctc_log_probs, enc_lens, beam, model.blank_id, top_k)
    return rescore_nbest(model, enc, enc_lens, ctc_nbest, ctc_weight, nbest)


@torch.inference_mode()
def rescore_nbest(model: ASRModel, enc: torch.Tensor, enc_lens: torch.Tensor,
                  ctc_nbest: list[NBest], ctc_weight: float,
                  nbest: int | None = None) -> list[NBest]:
    """Re-rank given CTC N-best lists (scores = log P_ctc) with the decoder: each
    utterance's hypotheses scored together by ``model.score_nbest`` (an ASRModel scores
    them as a prefix tree, an exported model hypothesis by hypothesis)."""
    att = model.score_nbest(enc, enc_lens, [[h.tokens for h in hyps] for hyps in ctc_nbest])
    results: list[NBest] = []
    for hyps, scores in zip(ctc_nbest, att, strict=True):
        ranked = [Hypothesis(hyp.tokens, _combine(hyp.score, score, ctc_weight))
                  for hyp, score in zip(hyps, scores.tolist(), strict=True)]
        results.append(sorted(ranked, key=lambda h: -h.score)[: nbest or len(ranked)])
    return results


def _combine(ctc: float, att: float, ctc_weight: float) -> float:
    if ctc_weight == 0.0:
        return att
    if ctc_weight == 1.0:
        return ctc
    return ctc_weight * ctc + (1.0 - ctc_weight) * att


@dataclass(frozen=True)
class AttentionRescoring(SearchMethod):
    """``attention_rescoring``: the CTC prefix beam search's ``beam``-best rescored by the
    attention decoder with weight ``ctc_weight`` on CTC; ``top_k`` labels tried per frame
    (null: ``beam``)."""

    beam: PositiveInt = 10
    ctc_weight: UnitInterval = 0.3
    top_k: PositiveInt | None = None
    needs_decoder = True
    needs_ctc = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return attention_rescoring(model, enc, enc_lens, ctc_log_probs, self.beam,
                                   self.ctc_weight, self.top_k)

    def settings(self) -> dict:
        return {"beam": self.beam, "ctc_weight": self.ctc_weight,
                "top_k": self.top_k or self.beam}
