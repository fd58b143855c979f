"""Attention rescoring (WeNet's default, Zhang et al. 2021 "WeNet", sec. 2.2; the 3M paper's
decoding): the CTC prefix beam search N-best is rescored by the attention decoder, which sees
each whole hypothesis in one teacher-forced pass:

    score(y) = λ·log P_ctc(y | x) + (1 − λ)·log P_att(y, eos | x)

with λ = ``ctc_weight``; the hypothesis with the best combined score wins. Cheap (one
teacher-forced decoder pass per hypothesis, the hypotheses of a batch scored together in
passes of similar lengths) and usually the best of the CTC-based methods. Its cost is the
decoder's matmuls and attention over every hypothesis token (87 % of it for synth/conformer
at beam 10): batching saves dispatch and padding, not FLOPs.

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
                  nbest: int | None = None, chunk: int = 32) -> list[NBest]:
    """Re-rank given CTC N-best lists (scores = log P_ctc) with the decoder, ``chunk``
    hypotheses per decoder pass.

    The hypotheses of all utterances are taken shortest utterance first and, within one,
    shortest hypothesis first, so that each pass pads its hypotheses and its encoder
    frames to about their own length: a pass over hypotheses of mixed lengths spends most
    of its time on padding (the decoder's cost is its rows x frames)."""
    flat = [(b, hyp) for b, hyps in enumerate(ctc_nbest) for hyp in hyps]
    if not flat:
        return [[] for _ in ctc_nbest]
    frames = enc_lens.tolist()
    order = sorted(range(len(flat)), key=lambda i: (frames[flat[i][0]], len(flat[i][1].tokens)))
    att = [0.0] * len(flat)
    for start in range(0, len(order), chunk):
        part = order[start: start + chunk]
        owner = torch.tensor([flat[i][0] for i in part], device=enc.device)
        width = max(frames[flat[i][0]] for i in part)  # the chunk's longest utterance
        scores = model.score_hypotheses(enc[:, :width].index_select(0, owner),
                                        enc_lens.index_select(0, owner),
                                        [list(flat[i][1].tokens) for i in part]).tolist()
        for i, score in zip(part, scores, strict=True):
            att[i] = score
    results: list[NBest] = [[] for _ in ctc_nbest]
    for (b, hyp), att_score in zip(flat, att, strict=True):
        results[b].append(Hypothesis(hyp.tokens, _combine(hyp.score, att_score, ctc_weight)))
    return [sorted(hyps, key=lambda h: -h.score)[: nbest or len(hyps)] for hyps in results]


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
