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
hashes, (B, K, K) and (B, K, C) — no Python loop over the vocabulary or the beam, and
per-frame work that does not grow with the prefixes' length. At the sizes of a search
(B·K·C of a few thousand) a frame's cost is the dispatch of its ~30 tensor ops, not their
arithmetic, so the step is written for few ops: everything that does not depend on the
beam (the top-k labels, blank's column) is computed for a span of frames at once, a frame
records only the candidate each entry came from (the labels are read back at the end), and
utterances run longest first so that an ended one drops out of the batch instead of being
masked at every later frame. 32 utterances at V = 100, beam 10: ~0.15 ms a frame on one
CPU thread, ~10x a per-utterance dict-based search (benchmarks/decode.py --search-only).

    nbest = ctc_prefix_beam_search(model.ctc_log_probs(enc), enc_lens, beam=10)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from asrkit.arg_types import PositiveInt
from asrkit.decoding.hypothesis import NEG_INF, Hypothesis, NBest
from asrkit.decoding.search import SearchMethod


@torch.inference_mode()
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
        self.state = _BeamState.initial(batch, beam, vocab, torch.device(device))
        # per chunk: each entry's parent at each frame and the label it added or -1, both
        # (t, B, K); the prefixes are read back from them in ``nbest``
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.inference_mode()
    def advance(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> None:
        """log_probs (B, t, V) of the next frames, lengths (B,) how many of them are valid.

        The utterances are taken longest first, so that those still running are the first
        rows: after an utterance's last frame the steps run on fewer rows, and the ended
        ones keep their beam without a masked copy per frame."""
        log_probs = log_probs.float()
        frames = [max(0, min(n, log_probs.size(1))) for n in lengths.tolist()]  # one sync
        if max(frames, default=0) == 0:
            return
        order = sorted(range(len(frames)), key=lambda b: -frames[b])  # longest first, stable
        permute = order != list(range(len(frames)))
        state = self.state
        if permute:
            rows = torch.tensor(order, device=log_probs.device)
            log_probs, state = log_probs.index_select(0, rows), state.rows(rows)
        frames = [frames[b] for b in order]
        state, parents, labels = _advance_sorted(state, log_probs, frames, self.blank_id,
                                                 self.num_ext)
        if permute:
            back = torch.tensor(sorted(range(len(order)), key=order.__getitem__),
                                device=log_probs.device)
            state = state.rows(back)
            parents, labels = parents.index_select(1, back), labels.index_select(1, back)
        self.state = state
        self.steps.append((parents, labels))

    @torch.inference_mode()
    def nbest(self, nbest: int | None = None) -> list[NBest]:
        """Per utterance the N-best prefixes so far (up to ``nbest``, default the beam)."""
        batch = self.state.pb.size(0)
        return _nbest(self.state, _prefixes(self.steps, batch, self.beam),
                      nbest or self.beam)


# A prefix is identified by a 64-bit polynomial hash of its labels (integer overflow wraps),
# so that merging needs no comparison of whole label sequences: per frame the work is
# O(B·K·(K + C)), whatever the prefixes' length (with rows of labels it grew with the
# length, and a 5-minute utterance took a minute). The labels themselves are recovered at
# the end from each frame's chosen candidates.
_HASH_BASE = 1_000_003


class _BeamState:
    """pb, pnb (B, K) log-probs; total (B, K) = logaddexp(pb, pnb), sorted best first;
    labels (B, K, 3): the prefix's last label (V, a column of -inf appended to each frame,
    for the empty prefix), its hash, and the hash of the prefix without its last label
    (-1 for the empty prefix)."""

    def __init__(self, pb: torch.Tensor, pnb: torch.Tensor, total: torch.Tensor,
                 labels: torch.Tensor) -> None:
        self.pb, self.pnb, self.total, self.labels = pb, pnb, total, labels

    @classmethod
    def initial(cls, batch: int, beam: int, vocab: int, device: torch.device) -> _BeamState:
        pb = torch.full((batch, beam), NEG_INF, device=device)
        pb[:, 0] = 0.0  # the empty prefix, before any frame
        labels = torch.tensor([vocab, 0, -1], device=device).expand(batch, beam, 3)
        return cls(pb, torch.full_like(pb, NEG_INF), pb.clone(), labels.clone())

    def fields(self) -> tuple[torch.Tensor, ...]:
        return self.pb, self.pnb, self.total, self.labels

    def rows(self, index: torch.Tensor) -> _BeamState:
        return _BeamState(*(field.index_select(0, index) for field in self.fields()))

    def narrow(self, start: int, length: int) -> _BeamState:
        return _BeamState(*(field.narrow(0, start, length) for field in self.fields()))

    @staticmethod
    def cat(states: list[_BeamState]) -> _BeamState:
        return _BeamState(*(torch.cat(fields) for fields in zip(*(s.fields() for s in states))))


class _FrameInputs:
    """What each frame of a span needs, computed for all its frames at once (B, t, ...):
    the frame's log-probabilities with a -inf column appended (V + 1), blank's (1), the
    ``C`` most likely non-blank labels and their log-probabilities, those labels + 1 (the
    hash's digits), and the labels each candidate slot adds (1 + C: none, then the C)."""

    def __init__(self, log_probs: torch.Tensor, blank_id: int, num_ext: int, beam: int) -> None:
        batch, frames, _ = log_probs.shape  # (B, t, V)
        self.beam, self.stride = beam, num_ext + 1  # a beam entry stays or takes one of C
        self.x = torch.cat([log_probs, log_probs.new_full((batch, frames, 1), NEG_INF)], 2)
        self.blank = log_probs[:, :, blank_id: blank_id + 1]  # (B, t, 1)
        labels = log_probs.index_fill(2, torch.tensor([blank_id], device=log_probs.device),
                                      NEG_INF)
        top_val, top_tok = labels.topk(num_ext, dim=2)  # (B, t, C)
        self.top_val, self.top_tok = top_val.unsqueeze(2), top_tok.unsqueeze(2)  # (B, t, 1, C)
        self.slot_labels = torch.cat([top_tok.new_full((batch, frames, 1), -1), top_tok],
                                     dim=2)  # (B, t, 1 + C)
        self.neg_inf = log_probs.new_full((batch, beam, num_ext), NEG_INF)  # (B, K, C)

    def frames(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Per frame: (x, blank, top_val, top_tok, top_tok + 1, top_tok over the beam
        (B, K, C), -inf (B, K, C))."""
        beam_tok = self.top_tok.expand(-1, -1, self.beam, -1)
        return zip(self.x.unbind(1), self.blank.unbind(1), self.top_val.unbind(1),
                   self.top_tok.unbind(1), (self.top_tok + 1).unbind(1), beam_tok.unbind(1),
                   itertools.repeat(self.neg_inf))

    def labels(self, index: torch.Tensor) -> torch.Tensor:
        """The label each chosen candidate (t, B, K) added, or -1 (t, B, K)."""
        return self.slot_labels.transpose(0, 1).gather(2, index % self.stride)


def _advance_sorted(state: _BeamState, log_probs: torch.Tensor, frames: list[int],
                    blank_id: int, num_ext: int,
                    ) -> tuple[_BeamState, torch.Tensor, torch.Tensor]:
    """The search over a chunk whose utterances are sorted longest first (``frames``: each
    one's valid frames) -> (the new state, each entry's parent at each frame (t, B, K) and
    the label it added or -1).

    Frames are taken in spans over which the same utterances run (the first ``rows``);
    one that has ended keeps its beam (at the later frames each entry is its own parent)."""
    batch, beam = state.pb.shape
    stride = num_ext + 1
    stays = stride * torch.arange(beam, device=state.pb.device)  # (K,) each entry staying
    ended: list[_BeamState] = []  # rows that stopped, the latest first once reversed
    parents, labels, rows, start = [], [], batch, 0
    while start < frames[0]:
        while frames[rows - 1] <= start:
            rows -= 1
        if rows < state.pb.size(0):
            ended.append(state.narrow(rows, state.pb.size(0) - rows))
            state = state.narrow(0, rows)
        stop, chosen = frames[rows - 1], []
        inputs = _FrameInputs(log_probs[:rows, start:stop], blank_id, num_ext, beam)
        for frame in inputs.frames():
            state, index = _prefix_step(state, stays, *frame)
            chosen.append(index)
        index = torch.stack(chosen)  # (stop - start, rows, K)
        parent, label = index // stride, inputs.labels(index)
        if rows < batch:
            rest = (stop - start, batch - rows, beam)
            parent = torch.cat([parent, torch.arange(beam, device=index.device).expand(rest)], 1)
            label = torch.cat([label, label.new_full(rest, -1)], dim=1)
        parents.append(parent)
        labels.append(label)
        start = stop
    if rows < batch:
        ended.append(state)  # (only to put the rows back together below)
        state = _BeamState.cat(ended[::-1])
    return state, torch.cat(parents), torch.cat(labels)


def _prefix_step(state: _BeamState, stays: torch.Tensor, x: torch.Tensor, blank: torch.Tensor,
                 top_val: torch.Tensor, top_tok: torch.Tensor, digit: torch.Tensor,
                 beam_tok: torch.Tensor, neg_inf: torch.Tensor,
                 ) -> tuple[_BeamState, torch.Tensor]:
    """One frame -> (the next beam, the candidate each entry came from (B, K): index
    ``k * (1 + C) + s`` is entry k staying (s = 0, ``stays``) or extended by
    top_tok[s - 1]).

    About thirty small tensor ops, each over the whole batch and beam: at the sizes of a
    search (B·K·C of a few thousand) their dispatch, not their arithmetic, is the cost."""
    pb, pnb, total = state.pb, state.pnb, state.total
    last, key, parent = state.labels.unbind(2)  # (B, K) each
    beam, num_ext = pb.size(1), top_tok.size(-1)
    alive = total > NEG_INF  # (B, K)
    stay_pb = total + blank  # (B, K)
    stay_pnb = pnb + x.gather(1, last)  # the last label repeated (-inf for the empty prefix)
    repeat = top_tok == last.unsqueeze(2)  # (B, K, C): label c is prefix k's last label
    ext_pnb = torch.where(repeat, pb.unsqueeze(2), total.unsqueeze(2)) + top_val  # (B, K, C)
    # Merge: a live entry j that equals live entry k extended by top_tok[c] (j's parent is
    # k, j's last label is c) takes that extension's probability, and the extension is
    # dropped. Prefixes in the beam are distinct and so are the C labels: each j has at
    # most one (k, c), found by two comparisons, (B, J, K) and (B, J, C) = ``repeat``.
    from_k, k = (parent.unsqueeze(2) == key.unsqueeze(1)).logical_and_(
        alive.unsqueeze(1)).max(dim=2)  # (B, J)
    from_c, c = repeat.max(dim=2)  # (B, J)
    found = from_k.logical_and_(from_c).logical_and_(alive)  # (B, J)
    ext_index = torch.add(c, k, alpha=num_ext)  # (B, J) into ext_pnb (B, K * C)
    merged = torch.where(found, ext_pnb.flatten(1).gather(1, ext_index), NEG_INF)
    stay_pnb = torch.logaddexp(stay_pnb, merged)
    # candidates (B, K, 1 + C): slot 0 = the prefix stays, slot 1 + c = extended by top_tok[c]
    cand_pb = torch.cat([stay_pb.unsqueeze(2), neg_inf], dim=2).flatten(1)  # (B, K(1 + C))
    cand_pnb = torch.cat([stay_pnb.unsqueeze(2), ext_pnb], dim=2).flatten(1)
    # the merged extensions become -inf (an entry without one writes its own stay back)
    cand_pnb.scatter_(1, torch.where(found, ext_index + k + 1, stays),
                      torch.where(found, NEG_INF, stay_pnb))
    new_total, index = torch.logaddexp(cand_pb, cand_pnb).topk(beam, dim=1)  # (B, K), sorted
    ext_key = torch.add(digit, key.unsqueeze(2), alpha=_HASH_BASE)  # (B, K, C)
    ext_labels = torch.stack([beam_tok, ext_key, key.unsqueeze(2).expand_as(ext_key)], dim=3)
    cand_labels = torch.cat([state.labels.unsqueeze(2), ext_labels], dim=2).flatten(1, 2)
    new = _BeamState(cand_pb.gather(1, index), cand_pnb.gather(1, index), new_total,
                     cand_labels.gather(1, index.unsqueeze(2).expand(-1, -1, 3)))
    return new, index


def _prefixes(steps: list[tuple[torch.Tensor, torch.Tensor]], batch: int,
              beam: int) -> list[list[list[int]]]:
    """The labels of every final beam entry, by following the parents from the last frame
    to the first (vectorised over utterances and entries)."""
    if not steps:
        return [[[] for _ in range(beam)] for _ in range(batch)]
    parents = torch.cat([p for p, _ in steps]).cpu()  # (T, B, K)
    labels = torch.cat([t for _, t in steps]).cpu()
    entry = torch.arange(beam).expand(batch, beam).clone()  # the entry each final one had
    chosen = torch.empty_like(labels)
    for t in range(labels.size(0) - 1, -1, -1):
        chosen[t] = labels[t].gather(1, entry)
        entry = parents[t].gather(1, entry)
    rows = chosen.permute(1, 2, 0).tolist()  # (B, K, T)
    return [[[label for label in row if label >= 0] for row in utterance] for utterance in rows]


def _nbest(state: _BeamState, prefixes: list[list[list[int]]], nbest: int) -> list[NBest]:
    scores = state.total.cpu().tolist()  # (B, K), sorted best first
    return [[Hypothesis(tuple(prefix), score)
             for prefix, score in zip(prefixes[b], row) if score > NEG_INF][:nbest]
            for b, row in enumerate(scores)]


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



