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
most likely non-blank labels of the frame (B, K, C); a merge is found by comparing token
rows, (B, K, K, length) — no Python loop over the vocabulary or the beam.

    nbest = ctc_prefix_beam_search(model.ctc_log_probs(enc), enc_lens, beam=10)
"""

from __future__ import annotations

import torch

from asrkit.decoding.hypothesis import Hypothesis, NBest

NEG_INF = float("-inf")


@torch.no_grad()
def ctc_prefix_beam_search(log_probs: torch.Tensor, lengths: torch.Tensor, beam: int = 10,
                           blank_id: int = 0, top_k: int | None = None,
                           nbest: int | None = None) -> list[NBest]:
    """log_probs (B, T, V) CTC log-probabilities, lengths (B,) valid frames -> per utterance
    the N-best prefixes (up to ``nbest``, default ``beam``) with log P(labelling | x), best
    first. ``top_k``: labels tried as extensions per frame (default ``beam``)."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    batch, frames, vocab = log_probs.shape
    device = log_probs.device
    log_probs = log_probs.float()
    lengths = lengths.to(device)
    num_ext = max(1, min(top_k or beam, vocab - 1))
    pb = torch.full((batch, beam), NEG_INF, device=device)
    pb[:, 0] = 0.0  # the empty prefix, before any frame
    pnb = torch.full((batch, beam), NEG_INF, device=device)
    state = _BeamState(pb, pnb,
                       torch.full((batch, beam, max(frames, 1)), -1, device=device),
                       torch.zeros(batch, beam, dtype=torch.long, device=device),
                       torch.full((batch, beam), -1, dtype=torch.long, device=device))
    for t in range(frames):
        active = t < lengths  # (B,)
        if not bool(active.any()):
            break
        new = _prefix_step(log_probs[:, t], state, num_ext, blank_id)
        state = new.where(active, state)
    return _nbest(state, nbest or beam)


class _BeamState:
    """pb, pnb (B, K) log-probs; tokens (B, K, L) prefixes padded with -1; length (B, K);
    last (B, K) last label or -1 for the empty prefix."""

    def __init__(self, pb: torch.Tensor, pnb: torch.Tensor, tokens: torch.Tensor,
                 length: torch.Tensor, last: torch.Tensor) -> None:
        self.pb, self.pnb, self.tokens, self.length, self.last = pb, pnb, tokens, length, last

    def where(self, active: torch.Tensor, old: _BeamState) -> _BeamState:
        """This state for utterances with ``active`` (B,) True, ``old`` for the others."""
        a2 = active[:, None]
        return _BeamState(torch.where(a2, self.pb, old.pb), torch.where(a2, self.pnb, old.pnb),
                          torch.where(a2[:, :, None], self.tokens, old.tokens),
                          torch.where(a2, self.length, old.length),
                          torch.where(a2, self.last, old.last))


def _prefix_step(x: torch.Tensor, state: _BeamState, num_ext: int, blank_id: int) -> _BeamState:
    """One frame: x (B, V) log-probabilities -> the next beam."""
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
    tokens = state.tokens.gather(1, parent[:, :, None].expand_as(state.tokens))
    parent_len = state.length.gather(1, parent)
    position = parent_len.clamp(max=tokens.size(2) - 1)[:, :, None]
    written = torch.where(extended, new_token, tokens.gather(2, position).squeeze(2))
    tokens = tokens.scatter(2, position, written[:, :, None])
    return _BeamState(cand_pb.gather(1, index), cand_pnb.gather(1, index), tokens,
                      parent_len + extended.long(),
                      torch.where(extended, new_token, last.gather(1, parent)))


def _extension_matches(state: _BeamState, alive: torch.Tensor,
                       top_tok: torch.Tensor) -> torch.Tensor:
    """(B, J, K, C) bool: beam prefix j equals prefix k extended by label top_tok[c].

    Prefixes in the beam are distinct, so each j matches at most one (k, c) and each (k, c)
    at most one j."""
    batch, beam = state.length.shape
    used = int(state.length.max())
    if used == 0:
        return torch.zeros(batch, beam, beam, top_tok.size(1), dtype=torch.bool,
                           device=top_tok.device)
    tokens = state.tokens[:, :, :used]  # (B, K, L)
    last_position = (state.length - 1).clamp(min=0)[:, :, None]
    without_last = tokens.scatter(2, last_position, -1)  # prefix j minus its last label
    same = (without_last[:, :, None, :] == tokens[:, None, :, :]).all(-1)  # (B, J, K)
    same &= state.length[:, :, None] == state.length[:, None, :] + 1
    same &= alive[:, :, None] & alive[:, None, :]
    return same[..., None] & (state.last[:, :, None, None] == top_tok[:, None, None, :])


def _nbest(state: _BeamState, nbest: int) -> list[NBest]:
    scores = torch.logaddexp(state.pb, state.pnb).cpu()  # (B, K), sorted best first
    tokens, length = state.tokens.cpu(), state.length.cpu()
    results = []
    for b in range(scores.size(0)):
        hyps = [Hypothesis(tuple(tokens[b, k, : length[b, k]].tolist()), float(scores[b, k]))
                for k in range(scores.size(1)) if scores[b, k] > NEG_INF]
        results.append(hyps[:nbest])
    return results
