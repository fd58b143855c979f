"""Alignment-length synchronous transducer beam search (Saon, Tüske & Audhkhasi 2020), the
standard search over the full transducer lattice (Graves 2012's output distribution: any
number of labels per frame, a blank to leave a frame), batched over utterances and
hypotheses, returning an N-best list.

Step i extends every live hypothesis whose alignment has i symbols: one with u labels sits
at lattice node (t = i - u, u) and is scored with the joint of frame t and its prediction
output. A blank moves it to frame t + 1, label v gives u + 1 labels on the same frame. All
hypotheses of a step have alignments of the same length, so they compete fairly, and two
candidates with the same label sequence are at the same node: they are merged by adding
their probabilities (the forward algorithm's alpha, restricted to what the beam kept). A
blank on the last frame finishes a hypothesis: it leaves the live beam for the final set,
which keeps the ``beam`` best finished ones; the live beam keeps the ``beam`` best of the
rest. An utterance stops when no live hypothesis can enter its final set any more (an
exact bound, ``_drop_hopeless``), at the latest after T' + max labels steps.

A finished hypothesis' score is thus log P(y | x) summed over the alignments the beam kept:
the search approximates the most probable label sequence argmax_y P(y | x), the quantity
the transducer loss trains. With a beam holding every sequence it is exact (tested against
the forward algorithm on every label sequence); with ``beam=1`` it is greedy search without
a per-frame cap (at most floor(``max_len_ratio`` · T') labels in all).

    nbest = transducer_beam_search(model.transducer, enc, enc_lens, beam=4)
    nbest, frames = transducer_beam_search(head, enc, enc_lens, return_frames=True)
    # frames[b][k][i]: encoder frame at which nbest[b][k].tokens[i] was emitted (for
    # merged hypotheses, those of the one that scored higher at each merge)
"""

from __future__ import annotations

import math

import torch

from asrkit.decoding.hypothesis import NBest
from asrkit.decoding.transducer_hypotheses import (
    NEG_INF,
    LabelSequences,
    initial_beam,
    keep_best,
    merge_extensions,
    nbest_lists,
    select_best,
)
from asrkit.models.transducer.head import TransducerHead


@torch.no_grad()
def transducer_beam_search(
        head: TransducerHead, enc: torch.Tensor, enc_lens: torch.Tensor, beam: int = 4,
        nbest: int | None = None, max_len_ratio: float = 1.0, return_frames: bool = False
) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
    """enc (B, T', D), enc_lens (B,) -> per utterance the N-best (up to ``nbest``, default
    ``beam``) with log P(y | x) scores, best first, each with at most
    floor(max_len_ratio · T') labels; with ``return_frames`` also each hypothesis' label
    frames. An utterance with no frames gives the empty hypothesis (score 0)."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    batch, frames, _ = enc.shape
    device = enc.device
    enc_lens = enc_lens.to(device)
    max_labels = (enc_lens.double() * max_len_ratio).floor().long()  # (B,)
    enc_proj = head.project_encoder(enc)  # (B, T', J)
    hyps = initial_beam(head, batch, beam, int(max_labels.max()), device)
    no_frames = (enc_lens == 0)[:, None]
    final = LabelSequences(hyps.scores.masked_fill(~no_frames, NEG_INF), hyps.tokens,
                           hyps.frames, hyps.length)  # (B, K) finished hypotheses
    hyps.scores = hyps.scores.masked_fill(no_frames, NEG_INF)
    for i in range(int((enc_lens + max_labels).max())):
        hyps.scores = _drop_hopeless(hyps.scores, final.scores)
        live = hyps.scores > NEG_INF  # (B, K)
        if not bool(live.any()):
            break
        t = (i - hyps.length).clamp(0, max(frames - 1, 0))  # (B, K) each row's frame
        frame = enc_proj.gather(1, t[:, :, None].expand(-1, -1, enc_proj.size(2)))  # (B, K, J)
        log_probs = head.joint(frame.flatten(0, 1), hyps.pred).view(batch, beam, -1)
        no_label = (hyps.length >= max_labels[:, None])[:, :, None]  # (B, K, 1)
        is_blank = torch.arange(log_probs.size(2), device=device) == head.blank_id
        cand = hyps.scores[:, :, None] + log_probs.masked_fill(no_label & ~is_blank, NEG_INF)
        cand = merge_extensions(cand, hyps, live, head.blank_id)  # (B, K, V)
        finishing = live & (t + 1 >= enc_lens[:, None])  # a blank leaves the last frame
        finished = cand[:, :, head.blank_id].masked_fill(~finishing, NEG_INF)
        final = keep_best(final, LabelSequences(finished, hyps.tokens, hyps.frames,
                                                hyps.length))
        cand[:, :, head.blank_id] = cand[:, :, head.blank_id].masked_fill(finishing, NEG_INF)
        hyps, _, _ = select_best(head, hyps, cand, t)
    return nbest_lists(final, nbest or beam, return_frames=return_frames)


def _drop_hopeless(live: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """live (B, K) scores of the live hypotheses, final (B, K) of the finished ones (best
    first) -> live with -inf for utterances where no live one can enter the final set.

    A sequence finished later gets its probability through the live hypotheses that are its
    prefixes (every alignment passes through one of them at this step), each contributing
    at most its score: at most K · (best live) in all. Below the K-th finished score,
    nothing changes the result: stopping there is exact."""
    bound = live.amax(dim=1) + math.log(live.size(1))  # (B,)
    hopeless = (final[:, -1] > NEG_INF) & (bound < final[:, -1])
    return live.masked_fill(hopeless[:, None], NEG_INF)
