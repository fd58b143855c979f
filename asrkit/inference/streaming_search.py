"""The searches a StreamingRecognizer (asrkit.inference.streaming) carries over the chunks of
one utterance, behind one interface: ``advance`` with each chunk's encoder output, ``nbest``
for the hypotheses so far, ``rescore`` with the attention decoder at the end, and
``token_spans`` for the times of the final hypothesis.

- ``ctc_prefix_beam`` (``StreamingCTCSearch``): CTC prefix beam search over the chunks'
  CTC log-probabilities (Graves 2012; WeNet U2's first pass, Zhang et al. 2020,
  asrkit.decoding.ctc_prefix_beam.CTCPrefixBeamSearchState); rescoring is attention
  rescoring (asrkit.decoding.attention_rescoring.rescore_nbest, ``ctc_weight`` on CTC);
  token times from CTC forced alignment of the final hypothesis (asrkit.inference.alignment).
- ``transducer_greedy`` / ``transducer_modified_beam`` (``StreamingTransducerSearch``):
  the transducer's greedy search or modified beam search carried over the chunks with the
  prediction network's state (asrkit.decoding.transducer_greedy / transducer_modified_beam);
  rescoring re-ranks the beam's N-best as ``asrkit decode`` does for hybrids
  (asrkit.decoding.transducer_search.rescore_transducer_nbest: ``transducer_weight`` on the
  search's score, ``ctc_weight`` on CTC when the model has a CTC head, the rest on the
  attention decoder); token times from the frames the labels were emitted at
  (asrkit.inference.emission_times), also after rescoring.

    method = default_streaming_method(model)      # transducer_modified_beam with a transducer
    search = streaming_search(model, method, beam=4, device="cpu")
    search.advance(enc_chunk)                     # (1, Q, D), chunk after chunk
    best = search.nbest()[0][0]
"""

from __future__ import annotations

import torch

from asrkit.decoding.attention_rescoring import rescore_nbest
from asrkit.decoding.ctc_prefix_beam import CTCPrefixBeamSearchState
from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.decoding.transducer_greedy import TransducerGreedySearchState
from asrkit.decoding.transducer_modified_beam import TransducerModifiedBeamSearchState
from asrkit.decoding.transducer_search import rescore_transducer_nbest
from asrkit.inference.alignment import TokenSpans, ctc_token_spans
from asrkit.inference.emission_times import emission_posteriors, emission_spans
from asrkit.inference.words import WordBuilder

TRANSDUCER_METHODS = ("transducer_greedy", "transducer_modified_beam")
STREAMING_METHODS = ("ctc_prefix_beam", *TRANSDUCER_METHODS)


def default_streaming_method(model) -> str:
    """``transducer_modified_beam`` for a model with a transducer (alone or in a hybrid, as
    ``asrkit transcribe`` defaults offline), else ``ctc_prefix_beam``."""
    if getattr(model, "transducer", None) is not None:
        return "transducer_modified_beam"
    return "ctc_prefix_beam"


def check_streaming_method(model, method: str, key: str = "method") -> None:
    """A ValueError naming ``key`` (the option that chose ``method``) when ``method`` cannot
    stream on ``model``."""
    if method not in STREAMING_METHODS:
        raise ValueError(f"{key}: {method!r} does not stream (streaming methods: "
                         f"{', '.join(STREAMING_METHODS)}; attention rescoring is --rescore)")
    if method == "ctc_prefix_beam" and getattr(model, "ctc", None) is None:
        raise ValueError(f"{key}: ctc_prefix_beam needs a CTC head; the model is a transducer "
                         f"alone (use transducer_greedy or transducer_modified_beam)")
    if method in TRANSDUCER_METHODS and getattr(model, "transducer", None) is None:
        raise ValueError(f"{key}: {method} needs a transducer; the model has none (use "
                         f"ctc_prefix_beam)")


def streaming_search(model, method: str, beam: int, device: torch.device | str = "cpu",
                     max_symbols_per_frame: int = 4,
                     ) -> StreamingCTCSearch | StreamingTransducerSearch:
    """A fresh search of ``method`` (one of STREAMING_METHODS) for one utterance."""
    check_streaming_method(model, method)
    if method == "ctc_prefix_beam":
        return StreamingCTCSearch(model, beam, device)
    return StreamingTransducerSearch(model, method, beam, device, max_symbols_per_frame)


def _one(frames: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([frames], device=device)


class StreamingCTCSearch:
    """CTC prefix beam search over the chunks of one utterance (module docstring)."""

    def __init__(self, model, beam: int, device: torch.device | str = "cpu") -> None:
        self.model, self.device = model, torch.device(device)
        self.state = CTCPrefixBeamSearchState(1, model.vocab_size, beam, model.blank_id,
                                              device=self.device)
        self.log_probs: list[torch.Tensor] = []  # (1, Q, V) per chunk, for the alignment

    def advance(self, enc: torch.Tensor) -> None:
        """enc (1, Q, D): the next chunk's encoder output."""
        log_probs = self.model.ctc_log_probs(enc)  # (1, Q, V)
        self.log_probs.append(log_probs)
        self.state.advance(log_probs, _one(enc.size(1), self.device))

    def nbest(self) -> list[NBest]:
        """[the N-best so far], best first."""
        return self.state.nbest()

    def rescore(self, enc: torch.Tensor, nbest: list[NBest], ctc_weight: float | None,
                transducer_weight: float) -> list[NBest]:
        """Attention rescoring of ``nbest`` on the whole utterance's enc (1, T', D);
        ``ctc_weight`` None: 0.3 (``transducer_weight`` is not used)."""
        return rescore_nbest(self.model, enc, _one(enc.size(1), enc.device), nbest,
                             0.3 if ctc_weight is None else ctc_weight)

    def token_spans(self, hyp: Hypothesis, enc: torch.Tensor, words: WordBuilder) -> TokenSpans:
        """``hyp``'s tokens aligned to the chunks' CTC log-probabilities (forced alignment)."""
        log_probs = torch.cat(self.log_probs, dim=1)[0].float().cpu()  # (T', V)
        return ctc_token_spans(log_probs, hyp.tokens, self.model.blank_id)


class StreamingTransducerSearch:
    """A transducer search over the chunks of one utterance (module docstring)."""

    def __init__(self, model, method: str, beam: int, device: torch.device | str = "cpu",
                 max_symbols_per_frame: int = 4) -> None:
        self.model, self.device = model, torch.device(device)
        head = model.transducer
        if method == "transducer_greedy":
            self.state = TransducerGreedySearchState(head, 1, max_symbols_per_frame, self.device)
        else:
            self.state = TransducerModifiedBeamSearchState(head, 1, beam, self.device)

    def advance(self, enc: torch.Tensor) -> None:
        """enc (1, Q, D): the next chunk's encoder output."""
        self.state.advance(enc, _one(enc.size(1), self.device))

    def nbest(self) -> list[NBest]:
        """[the N-best so far], best first (greedy search: one hypothesis)."""
        return self.state.nbest()

    def rescore(self, enc: torch.Tensor, nbest: list[NBest], ctc_weight: float | None,
                transducer_weight: float) -> list[NBest]:
        """``nbest`` re-ranked with the attention decoder (and CTC, weight ``ctc_weight``,
        None: 0.2 with a CTC head, else 0) on the whole utterance's enc (1, T', D)."""
        has_ctc = getattr(self.model, "ctc", None) is not None
        if ctc_weight is None:
            ctc_weight = 0.2 if has_ctc else 0.0
        ctc = self.model.ctc_log_probs(enc) if has_ctc else None
        return rescore_transducer_nbest(self.model, enc, _one(enc.size(1), enc.device), ctc,
                                        nbest, transducer_weight, ctc_weight)

    def token_spans(self, hyp: Hypothesis, enc: torch.Tensor, words: WordBuilder) -> TokenSpans:
        """Spans from the frames ``hyp``'s labels were emitted at (a hypothesis of the
        search's N-best; the search keeps distinct label sequences), confidences from the
        joint at each emission; enc (1, T', D) the whole utterance's encoder output."""
        nbest, frames = self.state.nbest(return_frames=True)
        at = dict(zip((h.tokens for h in nbest[0]), frames[0]))[hyp.tokens]
        tokens = torch.tensor([hyp.tokens], dtype=torch.long, device=enc.device)  # (1, U)
        emitted = torch.tensor([at], dtype=torch.long, device=enc.device)  # (1, U)
        confidence = emission_posteriors(self.model.transducer, enc, tokens, emitted)[0]
        ids = tokens[0].cpu()
        return emission_spans(emitted[0], words.joins_next(ids), confidence)
