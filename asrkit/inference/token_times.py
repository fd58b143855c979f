"""Token times of a window's best hypothesis, from one of two sources (``TOKEN_TIMES``), chosen
by the search method (``token_time_source``):

- ``transducer``: the transducer searches (``transducer_greedy``, ``transducer_modified_beam``,
  ``transducer_beam``) give the encoder frame each label was emitted at
  (asrkit.inference.emission_times: starts at the emission frames, confidence the joint's
  posterior of the label there);
- ``ctc``: every other method (the CTC and attention searches, ``transducer_rescoring``
  whose hypothesis is re-ranked by CTC and the decoder) is timed by CTC forced alignment of
  its best hypothesis (asrkit.inference.alignment), which needs the model's CTC head.
"""

from __future__ import annotations

import torch

from asrkit.config import ConfigError
from asrkit.decoding.hypothesis import Hypothesis
from asrkit.decoding.search import SearchMethod
from asrkit.inference.alignment import TokenSpans, ctc_token_spans
from asrkit.inference.emission_times import (
    emission_posteriors,
    emission_spans,
    emits_frames,
    search_with_frames,
)
from asrkit.inference.words import WordBuilder

Timed = tuple[list[Hypothesis], list[TokenSpans]]  # per window: best hypothesis, its spans


def ctc_token_times(model, method: SearchMethod, enc: torch.Tensor, enc_lens: torch.Tensor,
                    ctc_log_probs: torch.Tensor | None, words: WordBuilder) -> Timed:
    """Any method's best hypotheses, timed by CTC forced alignment of each."""
    nbest = method(model, enc, enc_lens, ctc_log_probs if method.needs_ctc else None)
    best = [n[0] if n else Hypothesis((), 0.0) for n in nbest]
    ctc = ctc_log_probs.float().cpu()
    return best, [ctc_token_spans(ctc[row, : int(enc_lens[row])], hyp.tokens, model.blank_id)
                  for row, hyp in enumerate(best)]


def transducer_token_times(model, method: SearchMethod, enc: torch.Tensor,
                           enc_lens: torch.Tensor, ctc_log_probs: torch.Tensor | None,
                           words: WordBuilder) -> Timed:
    """A transducer search's best hypotheses, timed by the frames their labels were emitted
    at; confidences from one batched joint over every window's labels."""
    head = model.transducer
    nbest, frames = search_with_frames(method, head, enc, enc_lens)
    best = [n[0] if n else Hypothesis((), 0.0) for n in nbest]
    best_frames = [f[0] if f else () for f in frames]
    tokens = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(h.tokens, dtype=torch.long) for h in best], batch_first=True,
        padding_value=head.blank_id)  # (B, U)
    at = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(f, dtype=torch.long) for f in best_frames], batch_first=True)  # (B, U)
    confidence = emission_posteriors(head, enc, tokens.to(enc.device), at.to(enc.device))
    spans = []
    for row, hyp in enumerate(best):
        ids, count = tokens[row, : len(hyp.tokens)], len(hyp.tokens)
        spans.append(emission_spans(at[row, :count], words.joins_next(ids),
                                    confidence[row, :count]))
    return best, spans


# where token times come from -> how a method's best hypotheses get them
TOKEN_TIMES = {"ctc": ctc_token_times, "transducer": transducer_token_times}


def token_time_source(method: SearchMethod, name: str, model) -> str:
    """The key of ``TOKEN_TIMES`` that times ``method``'s hypotheses on ``model``."""
    if emits_frames(method):
        return "transducer"
    if getattr(model, "ctc", None) is not None:
        return "ctc"
    raise ConfigError(f"methods: {name!r}: its tokens cannot be timed on this model (neither "
                      f"a transducer search's emission frames nor a CTC head to align with)")
