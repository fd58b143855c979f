"""One-pass joint CTC/attention beam search (Watanabe et al. 2017, "Hybrid CTC/attention
architecture for end-to-end speech recognition", sec. III-C, Algorithm 2; ESPnet's default
decoder).

Each hypothesis g is scored label by label with

    score(g·c) = score(g) + (1 − λ)·log p_att(c | g, x) + λ·(ψ(g·c) − ψ(g))

where ψ is the CTC prefix probability (asrkit.decoding.ctc_prefix_score) and λ the
``ctc_weight``. The CTC term rules out hypotheses the CTC alignment cannot support (early
ends, repeated or dropped chunks), the attention decoder's typical errors. As ESPnet does,
the CTC scores are computed only for the ``pre_beam`` (default ⌈1.5·beam⌉) best tokens by
attention score of each hypothesis. With λ = 0 this is exactly attention beam search.

    nbest = joint_ctc_attention_search(model, enc, enc_lens, model.ctc_log_probs(enc),
                                       beam=10, ctc_weight=0.3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from asrkit.arg_types import PositiveFloat, PositiveInt, UnitInterval
from asrkit.decoding.attention_beam import beam_search
from asrkit.decoding.ctc_prefix_score import CTCPrefixScorer
from asrkit.decoding.hypothesis import NBest
from asrkit.decoding.search import SearchMethod, max_output_lengths
from asrkit.models.asr_model import ASRModel


def joint_ctc_attention_search(model: ASRModel, enc: torch.Tensor, enc_lens: torch.Tensor,
                               ctc_log_probs: torch.Tensor, beam: int = 10,
                               ctc_weight: float = 0.3, length_penalty: float = 0.0,
                               length_norm: bool = False, nbest: int | None = None,
                               pre_beam: int | None = None,
                               max_len: torch.Tensor | None = None,
                               early_stop: bool = True) -> list[NBest]:
    """enc (B, T', D), enc_lens (B,) (each >= 1), ctc_log_probs (B, T', V) -> per utterance
    the N-best with joint scores, best first; ``max_len`` (B,) output-length limits
    (default the encoder lengths)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    vocab = ctc_log_probs.size(-1)
    if pre_beam is None:
        # with λ = 1 the attention scores cannot pre-select: score every token with CTC
        pre_beam = vocab if ctc_weight == 1.0 else math.ceil(1.5 * beam)
    scorer = CTCPrefixScorer(ctc_log_probs, enc_lens, beam, model.blank_id, model.eos_id)
    return beam_search(model, enc, enc_lens, beam, length_penalty, length_norm, nbest, max_len,
                       ctc_scorer=scorer, ctc_weight=ctc_weight, pre_beam=max(pre_beam, beam),
                       early_stop=early_stop)


@dataclass(frozen=True)
class JointCTCAttentionSearch(SearchMethod):
    """``joint``: one-pass joint CTC/attention beam search (CTC prefix scores with weight
    ``ctc_weight``); ``pre_beam`` tokens CTC-scored per hypothesis (null: 1.5 x beam);
    length options as ``attention``'s."""

    beam: PositiveInt = 10
    ctc_weight: UnitInterval = 0.3
    length_penalty: float = 0.0
    length_norm: bool = False
    pre_beam: PositiveInt | None = None
    max_len_ratio: PositiveFloat = 1.0
    needs_decoder = True
    needs_ctc = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return joint_ctc_attention_search(
            model, enc, enc_lens, ctc_log_probs, self.beam, self.ctc_weight,
            self.length_penalty, self.length_norm, pre_beam=self.pre_beam,
            max_len=max_output_lengths(enc_lens, self.max_len_ratio))
