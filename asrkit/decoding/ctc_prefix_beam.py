"""CTC prefix beam search in log space (Graves 2012, sec. 7.3; Hannun et al. 2014, Alg. 1).

Every hypothesis is a *labelling prefix* ``l`` with two log-probabilities over the frames
seen so far: ``pb`` (all paths producing ``l`` that end in blank) and ``pnb`` (ending in
``l``'s last label). At frame t, with x = log-probabilities of that frame:

- the prefix stays:   pb'(l)  = logaddexp(pb, pnb)(l) + x[blank]
                      pnb'(l) = pnb(l) + x[last(l)]             (the last label repeated)
- it is extended by c: pnb'(l+c) = (pb(l) if c == last(l) else logaddexp(pb, pnb)(l)) + x[c]

and an extension that equals a prefix already in the beam is merged into it (its pnb
added with logaddexp) — the step that makes this a search over labellings, not paths.
The beam keeps the ``beam`` best prefixes by logaddexp(pb, pnb); with a beam wide enough to
hold every prefix the scores are exact labelling probabilities (tested against enumeration).

Vectorised: all utterances (B) and beam entries (K) at once, extensions by the ``top_k``
most likely non-blank labels of the frame (B, K, C); a merge is found by comparing prefix
hashes, (B, K, K) — no Python loop over the vocabulary or the beam, and per-frame work that
does not grow with the prefixes' length.

    nbest = ctc_prefix_beam_search(model.ctc_log_probs(enc), enc_lens, beam=10)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asrkit.arg_types import PositiveInt
from asrkit.decoding.hypothesis import Hypothesis, NBest
from asrkit.decoding.search import SearchMethod

NEG_INF = float("-inf")


@torch.no_grad()
def ctc_prefix_beam_search(log_probs: torch.Tensor, lengths: torch.Tensor, beam: int = 10,
                           blank_id: int = 0, top_k: int | None = None,
                           nbest: int | None = None) -> list[NBest]:
    """log_probs (B, T, V) CTC log-probabilities, lengths (B,) valid frames -> per utterance
    the N-best prefixes (up to ``nbest``, default ``beam``) with log P(labelling | x), best
    first. ``top_k``: labels tried as extensions per frame (default ``beam``)."""
    search = CTCPrefixBeamSearchState(log_probs.size(0), log_probs.size(-1), beam, blank_id,
                                      top_k, log_probs.device)
    search.advance(log_probs, lengths)
    return search.nbest(nbest)


class CTCPrefixBeamSearchState:
    """The search carried over chunks of frames (streaming): ``advance`` with each chunk's
    log-probabilities, ``nbest`` at any time for the hypotheses so far. Advancing over all
    frames at once or chunk by chunk gives the same result.

        search = CTCPrefixBeamSearchState(batch=1, vocab=V, beam=10)
        for chunk in chunks:                      # (1, t, V) log-probabilities
            search.advance(chunk, torch.tensor([chunk.size(1)]))
            partial = search.nbest(1)[0][0]      # the best prefix so far
    """

    def __init__(self, batch: int, vocab: int, beam: int = 10, blank_id: int = 0,
                 top_k: int | None = None, device: torch.device | str = "cpu") -> None:
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        self.beam, self.blank_id = beam, blank_id
        self.num_ext = max(1, min(top_k or beam, vocab - 1))
        self.state = _BeamState.initial(batch, beam, torch.device(device))
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []  # per frame (parent, token)

    @torch.no_grad()
    def advance(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> None:
        """log_probs (B, t, V) of the next frames, lengths (B,) how many of them are valid."""
        log_probs = log_probs.float()
        lengths = lengths.to(log_probs.device)
        frames = int(lengths.max()) if log_probs.size(1) else 0  # one sync per chunk
        for t in range(frames):
            active = t < lengths  # (B,)
            new, parent, token = _prefix_step(log_probs[:, t], self.state, self.num_ext,
                                              self.blank_id)
            self.state = new.where(active, self.state)
            keep = torch.arange(self.beam, device=parent.device).expand_as(parent)
            self.steps.append((torch.where(active[:, None], parent, keep),
                               torch.where(active[:, None], token, -1)))

    def nbest(self, nbest: int | None = None) -> list[NBest]:
        """Per utterance the N-best prefixes so far (up to ``nbest``, default the beam)."""
        batch = self.state.pb.size(0)
        return _nbest(self.state, _prefixes(self.steps, batch, self.beam), nbest or self.beam)


# A prefix is identified by a 64-bit polynomial hash of its labels (integer overflow wraps),
# so that merging needs no comparison of whole label sequences: per frame the work is
# O(B·K²·C), whatever the prefixes' length (with rows of labels it grew with the length,
# and a 5-minute utterance took a minute). The labels themselves are recovered at the end
# from the per-frame back-pointers.
_HASH_BASE = 1_000_003


def _extend_hash(prefix_hash: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return prefix_hash * _HASH_BASE + (label + 1)


class _BeamState:
    """pb, pnb (B, K) log-probs; length (B, K); last (B, K) last label or -1 for the empty
    prefix; key (B, K) the prefix's hash, parent_key (B, K) the hash of the prefix without
    its last label."""

    def __init__(self, pb: torch.Tensor, pnb: torch.Tensor, length: torch.Tensor,
                 last: torch.Tensor, key: torch.Tensor, parent_key: torch.Tensor) -> None:
        self.pb, self.pnb, self.length, self.last = pb, pnb, length, last
        self.key, self.parent_key = key, parent_key

    @classmethod
    def initial(cls, batch: int, beam: int, device: torch.device) -> _BeamState:
        pb = torch.full((batch, beam), NEG_INF, device=device)
        pb[:, 0] = 0.0  # the empty prefix, before any frame
        zeros = torch.zeros(batch, beam, dtype=torch.long, device=device)
        return cls(pb, torch.full_like(pb, NEG_INF), zeros, zeros - 1, zeros, zeros - 1)

    def fields(self) -> tuple[torch.Tensor, ...]:
        return self.pb, self.pnb, self.length, self.last, self.key, self.parent_key

    def where(self, active: torch.Tensor, old: _BeamState) -> _BeamState:
        """This state for utterances with ``active`` (B,) True, ``old`` for the others."""
        a2 = active[:, None]
        return _BeamState(*(torch.where(a2, new, was)
                            for new, was in zip(self.fields(), old.fields())))


def _prefix_step(x: torch.Tensor, state: _BeamState, num_ext: int, blank_id: int,
                 ) -> tuple[_BeamState, torch.Tensor, torch.Tensor]:
    """One frame: x (B, V) log-probabilities -> (the next beam, each entry's parent (B, K),
    the label it added (B, K) or -1 when it stayed)."""
    beam = state.pb.size(1)
    pb, pnb, last = state.pb, state.pnb, state.last
    total = torch.logaddexp(pb, pnb)  # (B, K)
    x_last = x.gather(1, last.clamp(min=0)).masked_fill(last < 0, NEG_INF)  # (B, K)
    stay_pb = total + x[:, blank_id: blank_id + 1]
    stay_pnb = pnb + x_last
    labels = x.index_fill(1, torch.tensor([blank_id], device=x.device), NEG_INF)
    top_val, top_tok = labels.topk(num_ext, dim=1)  # (B, C)
    repeat = top_tok[:, None, :] == last[:, :, None]  # (B, K, C)
    ext_pnb = torch.where(repeat, pb[:, :, None], total[:, :, None]) + top_val[:, None, :]
    # merge extensions equal to a prefix already in the beam into that prefix
    match = _extension_matches(state, total > NEG_INF, top_tok)  # (B, J, K, C)
    merged = ext_pnb[:, None].masked_fill(~match, NEG_INF).flatten(2).logsumexp(-1)  # (B, J)
    stay_pnb = torch.logaddexp(stay_pnb, merged)
    ext_pnb = ext_pnb.masked_fill(match.any(dim=1), NEG_INF)
    # candidates (B, K, 1 + C): slot 0 = the prefix stays, slot 1 + c = extended by top_tok[c]
    cand_pb = torch.cat([stay_pb[:, :, None], torch.full_like(ext_pnb, NEG_INF)], dim=2)
    cand_pnb = torch.cat([stay_pnb[:, :, None], ext_pnb], dim=2)
    cand_pb, cand_pnb = cand_pb.flatten(1), cand_pnb.flatten(1)  # (B, K * (1 + C))
    _, index = torch.logaddexp(cand_pb, cand_pnb).topk(beam, dim=1)  # (B, K), sorted
    parent, slot = index // (num_ext + 1), index % (num_ext + 1)
    extended = slot > 0
    new_token = top_tok.gather(1, (slot - 1).clamp(min=0))  # (B, K)
    parent_key = state.key.gather(1, parent)
    new = _BeamState(
        cand_pb.gather(1, index), cand_pnb.gather(1, index),
        state.length.gather(1, parent) + extended.long(),
        torch.where(extended, new_token, last.gather(1, parent)),
        torch.where(extended, _extend_hash(parent_key, new_token), parent_key),
        torch.where(extended, parent_key, state.parent_key.gather(1, parent)))
    return new, parent, torch.where(extended, new_token, -1)


def _extension_matches(state: _BeamState, alive: torch.Tensor,
                       top_tok: torch.Tensor) -> torch.Tensor:
    """(B, J, K, C) bool: beam prefix j equals prefix k extended by label top_tok[c]: j
    without its last label is k (same hash, one label longer) and j's last label is c.

    Prefixes in the beam are distinct, so each j matches at most one (k, c) and each (k, c)
    at most one j."""
    same = state.parent_key[:, :, None] == state.key[:, None, :]  # (B, J, K)
    same &= state.length[:, :, None] == state.length[:, None, :] + 1
    same &= alive[:, :, None] & alive[:, None, :]
    return same[..., None] & (state.last[:, :, None, None] == top_tok[:, None, None, :])


def _prefixes(steps: list[tuple[torch.Tensor, torch.Tensor]], batch: int,
              beam: int) -> list[list[list[int]]]:
    """The labels of every final beam entry, by following the back-pointers from the last
    frame to the first (vectorised over utterances and entries)."""
    if not steps:
        return [[[] for _ in range(beam)] for _ in range(batch)]
    parents = torch.stack([p for p, _ in steps]).cpu()  # (T, B, K)
    tokens = torch.stack([t for _, t in steps]).cpu()
    entry = torch.arange(beam).expand(batch, beam).clone()  # the entry each final one had
    chosen = torch.empty_like(tokens)
    for t in range(len(steps) - 1, -1, -1):
        chosen[t] = tokens[t].gather(1, entry)
        entry = parents[t].gather(1, entry)
    chosen = chosen.permute(1, 2, 0)  # (B, K, T)
    return [[row[row >= 0].tolist() for row in utterance] for utterance in chosen]


def _nbest(state: _BeamState, prefixes: list[list[list[int]]], nbest: int) -> list[NBest]:
    scores = torch.logaddexp(state.pb, state.pnb).cpu()  # (B, K), sorted best first
    results = []
    for b in range(scores.size(0)):
        hyps = [Hypothesis(tuple(prefixes[b][k]), float(scores[b, k]))
                for k in range(scores.size(1)) if scores[b, k] > NEG_INF]
        results.append(hyps[:nbest])
    return results


@dataclass(frozen=True)
class CTCPrefixBeamSearch(SearchMethod):
    """``ctc_prefix_beam``: CTC prefix beam search; ``top_k`` labels tried per frame
    (null: ``beam``)."""

    beam: PositiveInt = 10
    top_k: PositiveInt | None = None
    needs_ctc = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return ctc_prefix_beam_search(ctc_log_probs, enc_lens, self.beam, model.blank_id,
                                      self.top_k)

    def settings(self) -> dict:
        return {"beam": self.beam, "top_k": self.top_k or self.beam}



