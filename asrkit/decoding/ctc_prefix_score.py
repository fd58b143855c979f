"""Vectorised CTC prefix scores for label-synchronous search (Watanabe et al. 2017,
"Hybrid CTC/attention architecture for end-to-end speech recognition", Algorithm 2).

For a hypothesis g and a candidate label c, the CTC prefix probability
ψ(h = g·c) = Σ over labellings starting with h of P_ctc(labelling | x) comes from the
forward variables of g, r_t^n(g) (paths over frames 1..t emitting g, ending in its last
label) and r_t^b(g) (ending in blank):

    Φ_t       = r_t^b(g) + (0 if c == last(g) else r_t^n(g))          [logaddexp in place of +]
    r_t^n(h)  = (r_{t-1}^n(h) ⊕ Φ_{t-1}) + x_t(c),   r_1^n(h) = x_1(c) if g is empty
    r_t^b(h)  = (r_{t-1}^b(h) ⊕ r_{t-1}^n(h)) + x_t(blank)
    ψ(h)      = r_1^n(h) ⊕ ⊕_{t≥2} (Φ_{t-1} + x_t(c));   ψ(g·eos) = r_T^n(g) ⊕ r_T^b(g)

(⊕ = logaddexp). The search adds the increment ψ(g·c) − ψ(g) to a hypothesis' score.

Vectorised over N hypotheses and C candidate labels at once, and with no loop over frames:
both recursions are linear in the probability domain, so each is a cumulative sum and a
``logcumsumexp`` over time (see ``_linear_recurrence``). Frames past an utterance's end get
x(blank) = 0 and x(label) = −inf, so r^b carries the total to the last padded frame and
utterances of different lengths share one batch exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asrkit.decoding.hypothesis import NEG_INF


@dataclass
class CTCPrefixState:
    """Per hypothesis (N rows): forward variables r (T, 2, N) [n, b], ψ(g) (N,), last label
    (N,) (-1 when g is empty) and prefix length (N,)."""

    r: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor
    length: torch.Tensor


class CTCPrefixScorer:
    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, beam: int,
                 blank_id: int = 0, eos_id: int = 2) -> None:
        """log_probs (B, T, V), lengths (B,); hypotheses are the B·beam rows of the search,
        utterance-major (row = b·beam + k)."""
        device = log_probs.device
        frames = log_probs.size(1)
        padded = ~(torch.arange(frames, device=device)[None, :]
                   < lengths.to(device)[:, None])  # (B, T)
        x = log_probs.float().masked_fill(padded[:, :, None], NEG_INF)
        x[:, :, blank_id] = x[:, :, blank_id].masked_fill(padded, 0.0)
        # kept per utterance, (T, B, V): a (T, B·beam, V) copy would be beam times larger
        self.x = x.transpose(0, 1).contiguous()
        self.row_utt = torch.arange(log_probs.size(0), device=device).repeat_interleave(beam)
        self.padded = padded.transpose(0, 1)[:, self.row_utt]  # (T, N)
        self.x_blank = self.x[:, self.row_utt, blank_id].double()  # (T, N)
        self.eos_id = eos_id

    def initial_state(self) -> CTCPrefixState:
        rows = self.row_utt.numel()
        r_n = torch.full_like(self.x_blank, NEG_INF)
        r_b = self.x_blank.cumsum(dim=0)  # the empty prefix: blanks only
        return CTCPrefixState(torch.stack([r_n, r_b], dim=1),
                              torch.zeros_like(r_n[0]),
                              torch.full((rows,), -1, dtype=torch.long, device=r_n.device),
                              torch.zeros(rows, dtype=torch.long, device=r_n.device))

    def score(self, state: CTCPrefixState,
              candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """candidates (N, C) labels -> (ψ(g·c) − ψ(g) (N, C), ψ(g·c) (N, C),
        forward variables of every g·c (T, 2, N, C))."""
        num = candidates.size(1)
        x_c = self.x[:, self.row_utt[:, None], candidates].double()  # (T, N, C)
        g_n, g_b = state.r[:, 0], state.r[:, 1]  # (T, N)
        repeat = candidates == state.last[:, None]  # (N, C)
        phi = torch.where(repeat[None], g_b[:, :, None],
                          torch.logaddexp(g_n, g_b)[:, :, None])  # (T, N, C)
        # r_n[0] = x_0(c) only after the empty prefix: entering input 0 (log 1), else -inf
        enter = torch.where((state.length == 0)[:, None], 0.0, NEG_INF).to(phi.dtype)
        enter = enter.expand(-1, num)  # (N, C)
        r_n = _linear_recurrence(torch.cat([enter[None], phi[:-1]]), x_c,
                                 self.padded[:, :, None])
        r_n0 = r_n[0]
        r_b = _linear_recurrence(
            torch.cat([torch.full_like(r_n[:1], NEG_INF), r_n[:-1]]),
            self.x_blank[:, :, None].expand(-1, -1, num), None)
        psi = torch.cat([r_n0[None], phi[:-1] + x_c[1:]], dim=0).logsumexp(dim=0)  # (N, C)
        ended = torch.logaddexp(g_n[-1], g_b[-1])[:, None].expand(-1, num)
        psi = torch.where(candidates == self.eos_id, ended, psi)
        delta = torch.where(torch.isfinite(state.psi)[:, None], psi - state.psi[:, None],
                            NEG_INF)
        return delta, psi, torch.stack([r_n, r_b], dim=1)

    @staticmethod
    def select(state: CTCPrefixState, candidates: torch.Tensor, psi: torch.Tensor,
               r: torch.Tensor, parent: torch.Tensor, slot: torch.Tensor) -> CTCPrefixState:
        """The state of the chosen extensions: row i is hypothesis ``parent[i]`` extended by
        its candidate ``slot[i]``."""
        label = candidates[parent, slot]
        return CTCPrefixState(r[:, :, parent, slot], psi[parent, slot], label,
                              state.length[parent] + 1)


def _linear_recurrence(inputs: torch.Tensor, x: torch.Tensor,
                       padded: torch.Tensor | None) -> torch.Tensor:
    """r[t] = (r[t-1] ⊕ inputs[t]) + x[t] with r[-1] = -inf, along dim 0, without a loop.

    In the probability domain R[t] = Σ_{s<=t} I[s]·Π_{u=s..t} X[u], so with the cumulative
    sum C[t] = Σ_{u<=t} log X[u]:  r[t] = C[t] + logcumsumexp_s(inputs[s] − C[s−1]).
    Computed in float64 (C grows with t; the subtraction must not lose the small terms),
    with log X clamped at -1e4 (probability 0 in any precision) and frames in ``padded``
    (log X = -inf) set to -inf afterwards."""
    log_x = x.double().clamp(min=-1e4)
    if padded is not None:
        log_x = log_x.masked_fill(padded, 0.0)
    cum = log_x.cumsum(dim=0)
    before = torch.cat([torch.zeros_like(cum[:1]), cum[:-1]])  # C[t-1], C[-1] = 0
    r = cum + torch.logcumsumexp(inputs.double() - before, dim=0)
    if padded is not None:
        r = r.masked_fill(padded, NEG_INF)
    return r
