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
    if max_symbols_per_frame < 1:
        raise ValueError(f"max_symbols_per_frame must be >= 1, got {max_symbols_per_frame}")
    batch, frames, _ = enc.shape
    device = enc.device
    enc_lens = enc_lens.to(device)
    enc_proj = head.project_encoder(enc)  # (B, T', J)
    start = torch.full((batch,), head.blank_id, dtype=torch.long, device=device)
    pred, state = head.predict(start, head.initial_state(batch, device))  # (B, J)
    capacity = max(1, frames * max_symbols_per_frame)
    tokens = torch.full((batch, capacity), -1, dtype=torch.long, device=device)
    token_frames = torch.full_like(tokens, -1)
    count = torch.zeros(batch, dtype=torch.long, device=device)
    scores = torch.zeros(batch, device=device)
    for t in range(frames):
        emitting = t < enc_lens  # (B,) rows still on frame t
        if not bool(emitting.any()):
            break
        for _ in range(max_symbols_per_frame):
            best_score, best = head.joint(enc_proj[:, t], pred).max(dim=-1)  # (B,)
            scores += best_score.masked_fill(~emitting, 0.0)
            emitting = emitting & (best != head.blank_id)
            if not bool(emitting.any()):
                break
            rows = emitting.nonzero().squeeze(1)
            tokens[rows, count[rows]] = best[rows]
            token_frames[rows, count[rows]] = t
            count += emitting.long()
            pred, state = head.advance(best, state, pred, emitting)
    tokens, token_frames, count, scores = (x.cpu() for x in (tokens, token_frames, count, scores))
    nbest = [[Hypothesis(tuple(tokens[b, : count[b]].tolist()), float(scores[b]))]
             for b in range(batch)]
    if not return_frames:
        return nbest
    return nbest, [[tuple(token_frames[b, : count[b]].tolist())] for b in range(batch)]
