"""Greedy transducer search (Graves 2012, sec. 2; batched as in icefall): at every encoder
frame take the most likely symbol; a label is emitted and the same frame is looked at again
(with the prediction network advanced), a blank moves to the next frame. At most
``max_symbols_per_frame`` labels are emitted per frame (4 as in icefall/k2), after which the
search moves on without a blank: an untrained or looping model cannot stall it.

This follows the single best alignment step by step (it approximates the most probable
alignment, not the most probable label sequence). The score is the log-probability of the
symbols it took, blanks included (a frame left at the cap adds no blank).

Batched over utterances: per frame and per symbol, one prediction-network step for the
utterances that emitted a label and one joint for all of them.

The search is a state carried over chunks of encoder frames (streaming,
``TransducerGreedySearchState``): the prediction network's state and projected output, the
labels so far with their frames, the scores. The offline function is that state advanced
over all frames at once, so chunk by chunk and whole give the same result.

    nbest = transducer_greedy_search(model.transducer, enc, enc_lens)
    nbest, frames = transducer_greedy_search(head, enc, enc_lens, return_frames=True)
    # frames[b][0][i]: the encoder frame at which nbest[b][0].tokens[i] was emitted
"""

from __future__ import annotations

import torch

from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.models.transducer.head import TransducerHead


@torch.no_grad()
def transducer_greedy_search(head: TransducerHead, enc: torch.Tensor, enc_lens: torch.Tensor,
                             max_symbols_per_frame: int = 4, return_frames: bool = False
                             ) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
    """enc (B, T', D), enc_lens (B,) -> per utterance a one-element N-best; with
    ``return_frames`` also, per utterance, [the frame of each label of that hypothesis]."""
    search = TransducerGreedySearchState(head, enc.size(0), max_symbols_per_frame, enc.device)
    search.advance(enc, enc_lens)
    return search.nbest(return_frames=return_frames)


class TransducerGreedySearchState:
    """Greedy search carried over chunks of encoder frames (streaming): ``advance`` with each
    chunk's encoder output, ``nbest`` at any time for the labels so far. Advancing over all
    frames at once or chunk by chunk gives the same result.

        search = TransducerGreedySearchState(model.transducer, batch=1)
        for enc_chunk in chunks:                       # (1, t, D) encoder output
            search.advance(enc_chunk, torch.tensor([enc_chunk.size(1)]))
            partial = search.nbest()[0][0].tokens     # the labels so far
    """

    def __init__(self, head: TransducerHead, batch: int, max_symbols_per_frame: int = 4,
                 device: torch.device | str = "cpu") -> None:
        if max_symbols_per_frame < 1:
            raise ValueError(f"max_symbols_per_frame must be >= 1, got {max_symbols_per_frame}")
        device = torch.device(device)
        self.head, self.max_symbols = head, max_symbols_per_frame
        start = torch.full((batch,), head.blank_id, dtype=torch.long, device=device)
        with torch.no_grad():
            self.pred, self.state = head.predict(start, head.initial_state(batch, device))
        self.tokens = torch.full((batch, 0), -1, dtype=torch.long, device=device)  # (B, L)
        self.token_frames = torch.full_like(self.tokens, -1)  # (B, L) frame of each label
        self.count = torch.zeros(batch, dtype=torch.long, device=device)  # labels so far
        self.scores = torch.zeros(batch, device=device)
        self.frames_seen = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)

    @torch.no_grad()
    def advance(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> None:
        """enc (B, t, D) the next encoder frames, enc_lens (B,) how many of them are valid."""
        head = self.head
        enc_lens = enc_lens.to(enc.device)
        frames = enc.size(1)
        self._reserve(frames * self.max_symbols)
        enc_proj = head.project_encoder(enc)  # (B, t, J)
        pred, state, count, scores = self.pred, self.state, self.count, self.scores
        for t in range(frames):
            emitting = t < enc_lens  # (B,) rows still on frame t
            if not bool(emitting.any()):
                break
            for _ in range(self.max_symbols):
                best_score, best = head.joint(enc_proj[:, t], pred).max(dim=-1)  # (B,)
                scores += best_score.masked_fill(~emitting, 0.0)
                emitting = emitting & (best != head.blank_id)
                if not bool(emitting.any()):
                    break
                rows = emitting.nonzero().squeeze(1)
                self.tokens[rows, count[rows]] = best[rows]
                self.token_frames[rows, count[rows]] = self.frames_seen[rows] + t
                count += emitting.long()
                pred, state = head.advance(best, state, pred, emitting)
        self.pred, self.state = pred, state
        self.frames_seen += enc_lens.clamp(max=frames)

    def nbest(self, return_frames: bool = False
              ) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
        """Per utterance a one-element N-best of the labels so far; with ``return_frames``
        also, per utterance, [the encoder frame of each of its labels]."""
        tokens, token_frames, count, scores = (x.cpu() for x in (
            self.tokens, self.token_frames, self.count, self.scores))
        batch = count.size(0)
        nbest = [[Hypothesis(tuple(tokens[b, : count[b]].tolist()), float(scores[b]))]
                 for b in range(batch)]
        if not return_frames:
            return nbest
        return nbest, [[tuple(token_frames[b, : count[b]].tolist())] for b in range(batch)]

    def _reserve(self, more: int) -> None:
        """Room for ``more`` labels after the longest row's (the label storage grows with
        the utterance, at least doubling, so a long stream copies it rarely)."""
        needed = int(self.count.max()) + more if self.count.numel() else 0
        capacity = self.tokens.size(1)
        if needed <= capacity:
            return
        grow = max(needed, 2 * capacity) - capacity
        pad = self.tokens.new_full((self.tokens.size(0), grow), -1)
        self.tokens = torch.cat([self.tokens, pad], dim=1)
        self.token_frames = torch.cat([self.token_frames, pad], dim=1)
