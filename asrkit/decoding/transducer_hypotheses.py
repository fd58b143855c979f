"""Batched hypotheses of the transducer beam searches (asrkit.decoding.transducer_beam and
transducer_modified_beam): per utterance K rows, each a label sequence with the encoder frame
at which each label was emitted, a log score, and the prediction network's projected output
and state for that sequence. Every operation works on all utterances and rows at once.

A search step scores candidates (B, K, V): slot ``blank`` of row k is row k unchanged (a
blank emitted), slot v is row k extended by label v. ``merge_extensions`` joins candidates
that are the same hypothesis (row j = row k + v: both have consumed the same frames and
labels), adding their probabilities; ``select_best`` keeps the K best candidates and runs
the prediction network for the rows that took a label; ``reserve_labels`` makes room for
more labels (a streamed utterance's storage grows chunk by chunk).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from asrkit.decoding.hypothesis import NEG_INF, Hypothesis, NBest
from asrkit.models.transducer.head import State, TransducerHead


@dataclass
class LabelSequences:
    scores: torch.Tensor  # (B, K) log scores, -inf for an empty slot
    tokens: torch.Tensor  # (B, K, L) labels, padded with -1
    frames: torch.Tensor  # (B, K, L) encoder frame of each label, padded with -1
    length: torch.Tensor  # (B, K) number of labels


@dataclass
class TransducerBeam(LabelSequences):
    pred: torch.Tensor  # (B * K, J) projected prediction output after the labels
    state: State  # prediction network state, B * K rows


def keep_best(first: LabelSequences, second: LabelSequences) -> LabelSequences:
    """The K best rows (K: ``first``'s) of both, per utterance, best first."""
    scores, index = torch.cat([first.scores, second.scores], dim=1).topk(
        first.scores.size(1), dim=1)

    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        both = torch.cat([a, b], dim=1)
        return both.gather(1, index.view(*index.shape, *[1] * (both.dim() - 2))
                           .expand(-1, -1, *both.shape[2:]))

    return LabelSequences(scores, pick(first.tokens, second.tokens),
                          pick(first.frames, second.frames), pick(first.length, second.length))


def initial_beam(head: TransducerHead, batch: int, beam: int, max_labels: int,
                 device: torch.device) -> TransducerBeam:
    """One live empty hypothesis (score 0) per utterance, the other K - 1 slots empty; room
    for ``max_labels`` labels per row."""
    rows = batch * beam
    scores = torch.full((batch, beam), NEG_INF, device=device)
    scores[:, 0] = 0.0
    tokens = torch.full((batch, beam, max(1, max_labels)), -1, dtype=torch.long, device=device)
    start = torch.full((rows,), head.blank_id, dtype=torch.long, device=device)
    pred, state = head.predict(start, head.initial_state(rows, device))
    return TransducerBeam(scores, tokens, tokens.clone(),
                          torch.zeros(batch, beam, dtype=torch.long, device=device), pred, state)


def reserve_labels(beam: TransducerBeam, more: int) -> TransducerBeam:
    """``beam`` with room for ``more`` labels after its longest row's: the label storage
    grows with a streamed utterance (at least doubling, so that it is copied rarely)."""
    needed = int(beam.length.max()) + more
    capacity = beam.tokens.size(2)
    if needed <= capacity:
        return beam
    batch, rows, _ = beam.tokens.shape
    pad = beam.tokens.new_full((batch, rows, max(needed, 2 * capacity) - capacity), -1)
    return dataclasses.replace(beam, tokens=torch.cat([beam.tokens, pad], dim=2),
                               frames=torch.cat([beam.frames, pad], dim=2))


def merge_extensions(cand: torch.Tensor, beam: TransducerBeam, live: torch.Tensor,
                     blank_id: int) -> torch.Tensor:
    """cand (B, K, V) candidate scores -> the same with each pair of coinciding candidates
    (extension "row k + v" equal to live row j's sequence, j's blank slot) merged: the
    log-sum of both goes to the slot that scored higher (whose frames the hypothesis keeps),
    the other slot is -inf.

    Live rows hold distinct sequences, so that is the only way two candidates coincide, and
    each j pairs with at most one (k, v) and each (k, v) with at most one j."""
    batch, beam_size, vocab = cand.shape
    used = int(beam.length.max())
    if used == 0:
        return cand
    tokens = beam.tokens[:, :, :used]  # (B, K, L)
    last_position = (beam.length - 1).clamp(min=0)[:, :, None]
    last = tokens.gather(2, last_position).squeeze(2).clamp(min=0)  # (B, J) row j's last label
    without_last = tokens.scatter(2, last_position, -1)
    same = (without_last[:, :, None, :] == tokens[:, None, :, :]).all(-1)  # (B, J, K)
    same &= beam.length[:, :, None] == beam.length[:, None, :] + 1
    same &= live[:, :, None] & live[:, None, :]
    if not bool(same.any()):
        return cand
    index = last[:, None, :].expand(batch, beam_size, beam_size)  # [b, k, j] = last_j
    extension = cand.gather(2, index).transpose(1, 2)  # (B, J, K): score of row k + last_j
    paired = same.any(dim=2)  # (B, J)
    extension, k = extension.masked_fill(~same, NEG_INF).max(dim=2)  # (B, J): j's partner
    stay = cand[:, :, blank_id]  # (B, J)
    total = torch.logaddexp(stay, extension)
    extension_wins = paired & (extension > stay)
    cand = cand.clone()
    cand[:, :, blank_id] = torch.where(paired, total.masked_fill(extension_wins, NEG_INF), stay)
    slot = torch.where(paired, k * vocab + last, beam_size * vocab)  # unpaired: a spare slot
    flat = torch.cat([cand.flatten(1), cand.new_zeros(batch, 1)], dim=1)
    flat = flat.scatter(1, slot, torch.where(extension_wins, total, NEG_INF))
    return flat[:, :-1].view_as(cand)


def select_best(head: TransducerHead, beam: TransducerBeam, cand: torch.Tensor,
                row_frames: torch.Tensor) -> tuple[TransducerBeam, torch.Tensor, torch.Tensor]:
    """cand (B, K, V), row_frames (B, K) the frame each row is at -> (the K best candidates
    per utterance as the next beam, best first; their parent rows (B, K); their symbols
    (B, K), blank for "unchanged")."""
    batch, beam_size, vocab = cand.shape
    scores, index = cand.flatten(1).topk(beam_size, dim=1)  # (B, K), sorted
    parent, symbol = index // vocab, index % vocab
    emitted = (symbol != head.blank_id) & (scores > NEG_INF)
    length = beam.length.gather(1, parent)
    position = length.clamp(max=beam.tokens.size(2) - 1)[:, :, None]

    def extend(rows: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        rows = rows.gather(1, parent[:, :, None].expand_as(rows))
        kept = rows.gather(2, position).squeeze(2)
        return rows.scatter(2, position, torch.where(emitted, value, kept)[:, :, None])

    tokens = extend(beam.tokens, symbol)
    frames = extend(beam.frames, row_frames.gather(1, parent))
    flat_parent = (torch.arange(batch, device=cand.device)[:, None] * beam_size
                   + parent).reshape(-1)
    pred, state = head.advance(symbol.reshape(-1), head.select_state(beam.state, flat_parent),
                               beam.pred.index_select(0, flat_parent), emitted.reshape(-1))
    return TransducerBeam(scores, tokens, frames, length + emitted.long(), pred, state), \
        parent, symbol


def blank_only(log_probs: torch.Tensor, blank_id: int) -> torch.Tensor:
    """(…, V) log-probabilities with every label at -inf and blank at 0: "stay, at no cost"."""
    stay = torch.full_like(log_probs, NEG_INF)
    stay[..., blank_id] = 0.0
    return stay


def nbest_lists(beam: LabelSequences, nbest: int, return_frames: bool = False
                ) -> list[NBest] | tuple[list[NBest], list[list[tuple[int, ...]]]]:
    """Per utterance the rows with a finite score, best first, at most ``nbest``; with
    ``return_frames`` also each hypothesis' label frames."""
    scores, order = beam.scores.sort(dim=1, descending=True)
    scores, order, raw = scores.cpu(), order.cpu(), beam.scores.cpu()
    tokens, frames, length = beam.tokens.cpu(), beam.frames.cpu(), beam.length.cpu()
    results, all_frames = [], []
    for b in range(scores.size(0)):
        rows = [int(k) for k, s in zip(order[b], scores[b]) if s > NEG_INF][:nbest]
        results.append([Hypothesis(tuple(tokens[b, k, : length[b, k]].tolist()),
                                   float(raw[b, k])) for k in rows])
        all_frames.append([tuple(frames[b, k, : length[b, k]].tolist()) for k in rows])
    return (results, all_frames) if return_frames else results
