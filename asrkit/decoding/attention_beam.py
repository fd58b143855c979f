"""Label-synchronous beam search over the attention decoder, batched over utterances and
hypotheses (the B·K hypotheses of a batch are the rows of one decoder call per step).

Each step runs ``model.decoder_step`` once for all rows with the per-layer cache (reordered
with ``index_select`` after selection), adds the log-probabilities of every allowed token to
each hypothesis' score and keeps the ``beam`` best extensions per utterance. A hypothesis that
emits eos is finished: it stays in the beam with its score fixed (it can only be extended by
eos at no cost), competing with the live ones; the search stops when every hypothesis of every
utterance has finished. Step scores are log-probabilities (≤ 0; CTC prefix-score increments
are ≤ 0 too), so a hypothesis' score never rises: once an utterance's best finished hypothesis
scores at least as well as its best live one, nothing can overtake it and ``early_stop`` drops
the live ones (the 1-best is exactly that of the full search; the N-best may be shorter). It
applies only without a positive length penalty or length normalisation. Hypotheses are forced to end after ``max_len`` tokens, by default the
encoder length (ESPnet's ``maxlenratio = 0``). The blank id is never emitted.

Length: ``length_penalty`` is added per emitted token (ESPnet's ``penalty``: > 0 favours longer
outputs); ``length_norm`` ranks the finished hypotheses by score / (tokens + 1) at the end.

The same loop runs the one-pass joint CTC/attention search (asrkit.decoding.joint_ctc_attention)
when given a CTC prefix scorer: each step's candidates are then the ``pre_beam`` best tokens by
attention score, rescored with (1 − λ)·attention + λ·ΔCTC prefix score.

    nbest = attention_beam_search(model, enc, enc_lens, beam=10)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asrkit.arg_types import PositiveFloat, PositiveInt
from asrkit.decoding.ctc_prefix_score import CTCPrefixScorer
from asrkit.decoding.hypothesis import NEG_INF, Hypothesis, NBest
from asrkit.decoding.search import SearchMethod, max_output_lengths
from asrkit.models.asr_model import ASRModel
from asrkit.models.mask import padding_mask


def attention_beam_search(model: ASRModel, enc: torch.Tensor, enc_lens: torch.Tensor,
                          beam: int = 10, length_penalty: float = 0.0,
                          length_norm: bool = False, nbest: int | None = None,
                          max_len: torch.Tensor | None = None,
                          early_stop: bool = True) -> list[NBest]:
    """enc (B, T', D), enc_lens (B,) (each >= 1) -> per utterance the N-best (up to ``nbest``,
    default ``beam``) with log P_att(y, eos | x) (+ penalty) scores, best first;
    ``early_stop=False`` keeps searching for a full N-best."""
    return beam_search(model, enc, enc_lens, beam, length_penalty, length_norm, nbest, max_len,
                       early_stop=early_stop)


@torch.no_grad()
def beam_search(model: ASRModel, enc: torch.Tensor, enc_lens: torch.Tensor, beam: int,
                length_penalty: float = 0.0, length_norm: bool = False,
                nbest: int | None = None, max_len: torch.Tensor | None = None,
                ctc_scorer: CTCPrefixScorer | None = None, ctc_weight: float = 0.0,
                pre_beam: int | None = None, early_stop: bool = True) -> list[NBest]:
    """The shared loop of attention and joint CTC/attention beam search (module docstring)."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if bool((enc_lens < 1).any()):
        raise ValueError("beam search needs at least one encoder frame per utterance")
    batch, rows = enc.size(0), enc.size(0) * beam
    device = enc.device
    enc_rows = enc.repeat_interleave(beam, dim=0)  # (N, T', D), N = B * K
    mask_rows = padding_mask(enc_lens, enc.size(1)).repeat_interleave(beam, dim=0)  # (N, T')
    limit = (enc_lens if max_len is None else max_len).to(device).repeat_interleave(beam)
    tokens = torch.full((rows, 1), model.sos_id, dtype=torch.long, device=device)  # (N, U)
    scores = torch.full((batch, beam), NEG_INF, device=device)
    scores[:, 0] = 0.0  # one live hypothesis (sos) per utterance at the start
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    ctc_state = None if ctc_scorer is None else ctc_scorer.initial_state()
    early_stop = early_stop and length_penalty <= 0.0 and not length_norm
    cache = None
    for step in range(int(limit.max()) + 1):
        att, cache = model.decoder_step(tokens, enc_rows, mask_rows, cache)  # (N, V)
        step_scores = _allowed_scores(att, finished, step >= limit, model)
        if ctc_scorer is None:
            cand_scores = step_scores  # every token is a candidate: (N, C = V)
            cand_tokens = torch.arange(att.size(1), device=device).expand(rows, -1)
        else:
            cand_scores, cand_tokens = step_scores.topk(min(pre_beam, att.size(1)), dim=1)
            delta, psi, r = ctc_scorer.score(ctc_state, cand_tokens)
            delta = delta.masked_fill(finished[:, None], 0.0)
            cand_scores = _combine(cand_scores, delta, ctc_weight)
        live = (cand_tokens != model.eos_id) & ~finished[:, None]
        cand_scores = cand_scores + length_penalty * live
        num = cand_scores.size(1)
        total = (scores.reshape(rows, 1) + cand_scores).reshape(batch, beam * num)
        scores, index = total.topk(beam, dim=1)  # (B, K)
        parent = (torch.arange(batch, device=device)[:, None] * beam + index // num).reshape(-1)
        slot = (index % num).reshape(-1)
        new_tokens = cand_tokens[parent, slot]  # (N,)
        tokens = torch.cat([tokens[parent], new_tokens[:, None]], dim=1)
        cache = [layer.index_select(0, parent) for layer in cache]
        if ctc_scorer is not None:
            ctc_state = ctc_scorer.select(ctc_state, cand_tokens, psi, r, parent, slot)
        # finished rows only ever add eos; -inf rows (fewer candidates than the beam) are dead
        finished = (new_tokens == model.eos_id) | (scores.reshape(-1) == NEG_INF)
        if early_stop:
            scores, finished = _stop_overtaken(scores, finished.view(batch, beam))
        if bool(finished.all()):
            break
    return _nbest(tokens[:, 1:], scores, model.eos_id, length_norm, nbest or beam)


def _stop_overtaken(scores: torch.Tensor,
                    finished: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """scores, finished (B, K): drop (score -inf, marked finished) the live hypotheses of
    utterances whose best finished hypothesis no live one can overtake any more."""
    best_finished = scores.masked_fill(~finished, NEG_INF).amax(dim=1)  # (B,)
    live = ~finished & (scores > NEG_INF)
    best_live = scores.masked_fill(~live, NEG_INF).amax(dim=1)
    drop = live & (best_finished >= best_live)[:, None] & (best_finished > NEG_INF)[:, None]
    return scores.masked_fill(drop, NEG_INF), (finished | drop).reshape(-1)


def _allowed_scores(att: torch.Tensor, finished: torch.Tensor, must_end: torch.Tensor,
                    model: ASRModel) -> torch.Tensor:
    """att (N, V) -> scores with disallowed tokens at -inf: never blank; only eos for rows
    that are finished (at no cost) or have reached their length limit."""
    scores = att.index_fill(1, torch.tensor([model.blank_id], device=att.device), NEG_INF)
    only_eos = torch.full_like(att, NEG_INF)
    only_eos[:, model.eos_id] = att[:, model.eos_id]
    scores = torch.where(must_end[:, None], only_eos, scores)
    only_eos[:, model.eos_id] = 0.0
    return torch.where(finished[:, None], only_eos, scores)


def _combine(att: torch.Tensor, ctc_delta: torch.Tensor, ctc_weight: float) -> torch.Tensor:
    """(1 − λ)·att + λ·ctc, keeping -inf (disallowed) attention entries -inf and never
    multiplying an infinite term by a zero weight."""
    if ctc_weight == 0.0:
        return att
    combined = ctc_weight * ctc_delta
    if ctc_weight < 1.0:
        combined = combined + (1.0 - ctc_weight) * att
    return combined.masked_fill(att == NEG_INF, NEG_INF)


def _nbest(tokens: torch.Tensor, scores: torch.Tensor, eos_id: int, length_norm: bool,
           nbest: int) -> list[NBest]:
    """tokens (N, U) ended by eos, scores (B, K) -> N-best lists, best first."""
    batch, beam = scores.shape
    tokens, scores = tokens.cpu(), scores.cpu()
    results = []
    for b in range(batch):
        hyps = []
        for k in range(beam):
            score = float(scores[b, k])
            if score == NEG_INF:
                continue
            row = tokens[b * beam + k].tolist()
            ids = tuple(row[: row.index(eos_id)] if eos_id in row else row)
            rank = score / (len(ids) + 1) if length_norm else score
            hyps.append((rank, Hypothesis(ids, score)))
        hyps.sort(key=lambda pair: -pair[0])
        results.append([hyp for _, hyp in hyps[:nbest]])
    return results


@dataclass(frozen=True)
class AttentionSearch(SearchMethod):
    """``attention``: beam search with the attention decoder alone; ``length_penalty``
    added per output token, or ranking by score / (tokens + 1) with ``length_norm``; at most
    ceil(``max_len_ratio`` x encoder frames) tokens."""

    beam: PositiveInt = 10
    length_penalty: float = 0.0
    length_norm: bool = False
    max_len_ratio: PositiveFloat = 1.0
    needs_decoder = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs) -> list[NBest]:
        return attention_beam_search(model, enc, enc_lens, self.beam, self.length_penalty,
                                     self.length_norm,
                                     max_len=max_output_lengths(enc_lens, self.max_len_ratio))
