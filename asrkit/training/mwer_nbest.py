"""The N-best lists and word errors of MWER fine-tuning (``trainer.mwer.enabled=true``).

Prabhavalkar et al. 2018 train on the model's own beam-search hypotheses: for each training
batch the model, in eval mode and without gradient, runs the attention beam search of
asrkit.decoding (beam ``trainer.mwer.beam``, searching on until a full N-best of
``trainer.mwer.nbest`` = 4 is found rather than stopping at the 1-best), the hypotheses and
references are turned into words with the tokenizer, and each hypothesis' word errors are
counted as every report counts them (sclite's alignment, asrkit.scoring.align.error_counts).
``ASRModel.forward_mwer`` then scores the hypotheses with gradient and computes the loss
(asrkit.models.mwer).

    make = MwerNBest(model, tokenizer, nbest=4, beam=4)
    nbest, errors = make(feats, feat_lens, tokens, token_lens)
    out = model(feats, feat_lens, tokens, token_lens, nbest=nbest, word_errors=errors)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from asrkit.decoding.attention_beam import attention_beam_search
from asrkit.models.asr_model import ASRModel
from asrkit.scoring.align import error_counts
from asrkit.text.base import Tokenizer

log = logging.getLogger(__name__)


class MwerNBest:
    """Makes a batch's N-best lists (token ids) and their word errors (module docstring)."""

    def __init__(self, model: ASRModel, tokenizer: Tokenizer, nbest: int = 4,
                 beam: int | None = None) -> None:
        if nbest < 1:
            raise ValueError(f"trainer.mwer.nbest must be >= 1, got {nbest}")
        beam = beam or nbest
        if beam < nbest:
            raise ValueError(f"trainer.mwer.beam ({beam}) must be >= trainer.mwer.nbest "
                             f"({nbest})")
        self.model, self.tokenizer, self.nbest, self.beam = model, tokenizer, nbest, beam

    @classmethod
    def from_trainer_config(cls, model: ASRModel, tokenizer: Tokenizer,
                            tcfg: Mapping[str, Any]) -> MwerNBest | None:
        """The N-best maker ``trainer.mwer`` asks for, or None when it is not enabled."""
        mwer = tcfg["mwer"]
        if not mwer["enabled"]:
            return None
        log.info("MWER fine-tuning: loss over the %d-best of an attention beam search of "
                 "width %d, + %g x CE", mwer["nbest"], mwer["beam"], model.mwer_ce_weight)
        if not tcfg["init_from"]:
            log.warning("MWER fine-tuning without trainer.init_from: it is meant to start "
                        "from a trained model")
        if getattr(model, "transducer", None) is not None:
            log.warning("MWER fine-tuning leaves the transducer out (its loss is not in the "
                        "objective: its weights stay as they start)")
        return cls(model, tokenizer, mwer["nbest"], mwer["beam"])

    @torch.no_grad()
    def __call__(self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor,
                 token_lens: torch.Tensor) -> tuple[list[list[tuple[int, ...]]],
                                                    list[list[float]]]:
        """feats (B, T, F), feat_lens (B,), tokens (B, U) (padded), token_lens (B,) ->
        (per utterance up to ``nbest`` hypotheses as token-id tuples, best first;
        per utterance each hypothesis' word errors)."""
        was_training = self.model.training
        self.model.eval()
        try:
            enc, enc_lens = self.model.encode(feats, feat_lens)
            lists = attention_beam_search(self.model, enc, enc_lens, beam=self.beam,
                                          nbest=self.nbest, early_stop=False)
        finally:
            self.model.train(was_training)
        refs = [self.tokenizer.decode(row[:n].tolist()).split()
                for row, n in zip(tokens.cpu(), token_lens.cpu().tolist())]
        nbest = [[hyp.tokens for hyp in hyps] for hyps in lists]
        pairs = [(ref, self.tokenizer.decode(h).split()) for ref, hyps in zip(refs, nbest)
                 for h in hyps]
        counts = iter(error_counts([r for r, _ in pairs], [h for _, h in pairs]))
        errors = [[float(next(counts)) for _ in hyps] for hyps in nbest]
        return nbest, errors
