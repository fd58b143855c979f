"""Modified beam search for transducers (icefall's "modified_beam_search"): one symbol per
encoder frame, so that every hypothesis is on the same frame and the search is a plain
frame-synchronous beam, batched over utterances and hypotheses.

At frame t every hypothesis (label sequence y, prediction output g_y) is scored with the
joint of frame t: emitting a blank keeps y, emitting label v gives y + v; both move on to
frame t + 1. Candidates that are the same label sequence (y_j = y_k + v) are merged by
adding their probabilities, then the ``beam`` best are kept. A hypothesis' score is thus
the log of the summed probability of its alignments with exactly one symbol (blank or
label) per frame that the beam kept: the search approximates

    argmax_y  sum_{a in A1(y)}  prod_t p(a_t | t, labels of a before t)

where A1(y) are the alignments of y that emit one symbol on every frame (a label does not
need a blank to leave its frame). With a beam holding every sequence the scores are exact
(tested against enumeration); with ``beam=1`` it is greedy search with one symbol per
frame. Merging happens before the pruning (icefall merges among the survivors), so the
beam holds ``beam`` distinct sequences.

Per frame: one joint for all B·K rows, one prediction-network step for the rows that took
a label, the top K of (B, K·V) candidates; no loop over utterances, hypotheses or labels.

The beam is a state carried over chunks of encoder frames (streaming,
``TransducerModifiedBeamSearchState``; its label storage grows with the utterance); the
offline function is that state advanced over all frames at once, so chunk by chunk and
whole give the same result.

    nbest = transducer_modified_beam_search(model.transducer, enc, enc_lens, beam=4)
    nbest, frames = transducer_modified_beam_search(head, enc, enc_lens, return_frames=True)
    # frames[b][k][i]: encoder frame at which nbest[b][k].tokens[i] was emitted (for
    # merged hypotheses, those of the one that scored higher at each merge)
"""

from __future__ import annotations

import torch

from asrkit.decoding.hypothesis import NBest
from asrkit.decoding.transducer_hypotheses import (
    NEG_INF,
    blank_only,
    initial_beam,
    merge_extensions,
    nbest_lists,
    reserve_labels,
    select_best,
)
from asrkit.models.transducer.head import TransducerHead


@torch.no_grad()
def transducer_modified_beam_search(
        head: TransducerHead, enc: torch.Tensor, enc_lens: torch.Tensor, beam: int = 4,
        nbest: int | None = None, return_frames: bool = False
) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
    """enc (B, T', D), enc_lens (B,) -> per utterance the N-best (up to ``nbest``, default
    ``beam``), best first; with ``return_frames`` also each hypothesis' label frames."""
    search = TransducerModifiedBeamSearchState(head, enc.size(0), beam, enc.device)
    search.advance(enc, enc_lens)
    return search.nbest(nbest, return_frames=return_frames)


class TransducerModifiedBeamSearchState:
    """The search carried over chunks of encoder frames (streaming): ``advance`` with each
    chunk's encoder output, ``nbest`` at any time for the hypotheses so far. The beam (each
    row's labels and their frames, score, prediction state and projected output) is the
    state; advancing over all frames at once or chunk by chunk gives the same result.

        search = TransducerModifiedBeamSearchState(model.transducer, batch=1, beam=4)
        for enc_chunk in chunks:                       # (1, t, D) encoder output
            search.advance(enc_chunk, torch.tensor([enc_chunk.size(1)]))
            partial = search.nbest(1)[0][0].tokens    # the best labels so far
    """

    def __init__(self, head: TransducerHead, batch: int, beam: int = 4,
                 device: torch.device | str = "cpu") -> None:
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        device = torch.device(device)
        self.head, self.beam = head, beam
        with torch.no_grad():
            self.hyps = initial_beam(head, batch, beam, 0, device)
        self.frames_seen = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)

    @torch.no_grad()
    def advance(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        """enc (B, t, D) the next encoder frames, enc_lens (B,) how many of them are valid."""
        head, beam = self.head, self.beam
        batch, frames, _ = enc.shape
        enc_lens = enc_lens.to(enc.device)
        hyps = reserve_labels(self.hyps, frames)  # at most one label per frame
        enc_proj = head.project_encoder(enc)  # (B, t, J)
        for t in range(frames):
            active = t < enc_lens  # (B,)
            if not bool(active.any()):
                break
            frame = enc_proj[:, t].repeat_interleave(beam, dim=0)  # (B·K, J)
            log_probs = head.joint(frame, hyps.pred).view(batch, beam, -1)  # (B, K, V)
            # an utterance past the end of its frames stays as it is
            log_probs = torch.where(active[:, None, None], log_probs,
                                    blank_only(log_probs, head.blank_id))
            cand = hyps.scores[:, :, None] + log_probs
            cand = merge_extensions(cand, hyps, hyps.scores > NEG_INF, head.blank_id)
            at = (self.frames_seen + t)[:, None].expand_as(hyps.length)  # (B, K)
            hyps, _, _ = select_best(head, hyps, cand, at)
        self.hyps = hyps
        self.frames_seen += enc_lens.clamp(max=frames)

    def nbest(self, nbest: int | None = None, return_frames: bool = False
              ) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
        """Per utterance the N-best so far (up to ``nbest``, default the beam), best first;
        with ``return_frames`` also each hypothesis' label frames."""
        return nbest_lists(self.hyps, nbest or self.beam, return_frames=return_frames)
