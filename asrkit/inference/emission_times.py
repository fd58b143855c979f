"""Token times and confidences of a transducer's hypothesis from the frames its labels were
emitted at, for ``asrkit transcribe``.

A transducer search walks the T' x (U + 1) lattice (Graves 2012): on frame t it either emits
a label (and stays on t, or moves on in the one-label-per-frame modified beam search) or a
blank (and moves to t + 1). The frame e_i on which label y_i was taken is where the model
placed it; asrkit's transducer searches return those frames (``return_frames=True``), and
``search_with_frames`` runs a configured search method that way.

    nbest, frames = search_with_frames(method, head, enc, enc_lens)
    confidence = emission_posteriors(head, enc, tokens, token_frames)    # (N, U)
    spans = emission_spans(token_frames[n, :u], joins_next, confidence[n, :u])

Times, in encoder frames (seconds with asrkit.inference.alignment.FrameTiming):

- start: the emission frame e_i (its start: centre(e_i) - period / 2);
- end: the next token's start when the next token belongs to the same word, so that the
  tokens of a word tile it; else (a word's last token, a separator) the end of its own
  emission frame, e_i + 1. Nothing in a transducer's output marks where the audio of a label
  ends, and the next word's emission may lie after a pause: a word thus spans from its first
  label's emission to the end of its last label's emission frame, as a CTC word spans its
  labels' spikes (asrkit.inference.alignment). Labels emitted on the same frame (greedy and
  standard beam search allow several) share that frame.
- confidence: the posterior of the emitted label at its emission node,
  exp log p(y_i | f_{e_i}, g(y_1 .. y_{i-1})), from the joint's log-probabilities (the
  blanks of the path are not counted); a word's confidence is its tokens' mean
  (asrkit.inference.words).

``head`` is anything with the decoding interface of asrkit.models.transducer.head (the
eager TransducerHead, or an exported model's asrkit.inference.exported_transducer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from asrkit.decoding.hypothesis import NBest
from asrkit.decoding.search import SearchMethod
from asrkit.decoding.transducer_beam import transducer_beam_search
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import transducer_modified_beam_search
from asrkit.decoding.transducer_search import (
    TransducerBeamSearch,
    TransducerGreedySearch,
    TransducerModifiedBeamSearch,
)
from asrkit.inference.alignment import TokenSpans
from asrkit.models.transducer.head import TransducerHead

Frames = list[list[tuple[int, ...]]]  # [utterance][hypothesis][label] -> encoder frame

# search method class -> the same search returning its emission frames
EMITTING_SEARCHES: dict[type, Callable[..., tuple[list[NBest], Frames]]] = {
    TransducerGreedySearch: lambda m, head, enc, lens: transducer_greedy_search(
        head, enc, lens, m.max_symbols_per_frame, return_frames=True),
    TransducerModifiedBeamSearch: lambda m, head, enc, lens: transducer_modified_beam_search(
        head, enc, lens, m.beam, return_frames=True),
    TransducerBeamSearch: lambda m, head, enc, lens: transducer_beam_search(
        head, enc, lens, m.beam, max_len_ratio=m.max_len_ratio, return_frames=True),
}


def emits_frames(method: SearchMethod) -> bool:
    """Whether ``method`` is a transducer search whose emission frames time its labels."""
    return type(method) in EMITTING_SEARCHES


def search_with_frames(method: SearchMethod, head, enc: torch.Tensor,
                       enc_lens: torch.Tensor) -> tuple[list[NBest], Frames]:
    """Run ``method`` (one of EMITTING_SEARCHES, with its options) on enc (B, T', D),
    enc_lens (B,) -> (per utterance its N-best, per utterance and hypothesis its frames)."""
    return EMITTING_SEARCHES[type(method)](method, head, enc, enc_lens)


def prefix_predictions(head, tokens: torch.Tensor) -> torch.Tensor:
    """tokens (N, U) -> (N, U, J): the projected prediction output before each label (after
    the start symbol and the labels to its left). The eager head runs its prediction network
    over the whole sequence at once; any other head (an exported one has only the one-step
    graph) steps through the labels, all rows together."""
    if isinstance(head, TransducerHead):
        out = head.prediction(tokens)  # (N, U + 1, H): position u is after u labels
        return head.joiner.project_prediction(out[:, : tokens.size(1)])
    rows, length = tokens.shape
    start = torch.full((rows,), head.blank_id, dtype=torch.long, device=tokens.device)
    pred, state = head.predict(start, head.initial_state(rows, tokens.device))  # (N, J)
    outputs = [pred]
    for u in range(length - 1):  # the prediction recursion: one step per label position
        pred, state = head.predict(tokens[:, u], state)
        outputs.append(pred)
    return torch.stack(outputs, dim=1)  # (N, U, J)


def emission_posteriors(head, enc: torch.Tensor, tokens: torch.Tensor,
                        frames: torch.Tensor) -> torch.Tensor:
    """enc (N, T', D) the rows' encoder outputs, tokens (N, U) their labels and frames
    (N, U) the frame each was emitted at (padding: any valid label and frame) -> (N, U)
    posterior of each label at its emission node."""
    rows, length = tokens.shape
    if length == 0:
        return torch.zeros(rows, 0)
    at_emission = enc.gather(1, frames[:, :, None].expand(-1, -1, enc.size(2)))  # (N, U, D)
    enc_proj = head.project_encoder(at_emission)  # (N, U, J)
    pred = prefix_predictions(head, tokens)  # (N, U, J)
    log_probs = head.joint(enc_proj.flatten(0, 1), pred.flatten(0, 1))  # (N·U, V)
    picked = log_probs.float().gather(1, tokens.reshape(-1, 1)).view(rows, length)
    return picked.exp().cpu()


def emission_spans(frames: torch.Tensor, joins_next: torch.Tensor,
                   confidence: torch.Tensor) -> TokenSpans:
    """frames (U,) the emission frame of each token (non-decreasing), joins_next (U,) bool:
    token i + 1 is in the same word as token i (False for the last), confidence (U,) ->
    spans [start, end) in encoder frames (module docstring)."""
    start = frames.long().cpu()
    following = torch.cat([start[1:], start[-1:] + 1])  # (U,) the next token's start
    end = torch.where(joins_next.cpu(), following, start + 1)
    return TokenSpans(start, torch.maximum(end, start + 1), confidence.float().cpu(), True)
