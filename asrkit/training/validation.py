"""Validation on the dev set: every loss term, token accuracy, and greedy WER/CER (CTC
greedy; transducer greedy for a transducer alone).

Loss terms are the scalars the model returns, each batch's weighted by its utterances (the
terms are per-utterance means within a batch; with ``model.length_normalized_loss=true``
the attention terms are per-token means, so their dev value is a mean of batch means
weighted by utterances, as ESPnet's reporter weights them, not a per-token mean over the
set); ``acc`` (and any ``acc*`` term) is averaged over the decoder's target tokens
(transcript + eos). CTC greedy decoding (of a second, plain ``model.encode``
pass, as the training forward may differ) takes the best unit per encoder frame, merges repeats and drops blanks (Graves et al. 2006); hypothesis and reference
are the tokenizer's ``decode`` of the units, so both are normalised alike. WER counts word
edits / reference words, CER character edits with spaces removed / reference characters,
both in percent, counted with sclite's alignment (asrkit.scoring.align.error_counts, as the
reports count them).

Under DDP every rank validates a strided share of the dev batches (no utterance left out,
whatever the number of ranks) and the sums are combined; every rank gets the same result.

    metrics = validate(model, dev_loader, tokenizer, device, precision, ctx)
    metrics["loss"], metrics["wer"], metrics["cer"], metrics["acc"]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import nn

from asrkit.data.loader import ResumableLoader
from asrkit.decoding.ctc_greedy import ctc_greedy_search
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.scoring.align import error_counts as align_error_counts
from asrkit.scoring.wer import chars_of, words_of
from asrkit.text.base import Tokenizer
from asrkit.training.distributed import DistributedContext, gather_objects
from asrkit.training.precision import Precision
from asrkit.training.rng import rng_isolated


class StridedBatches:
    """Batches ``rank, rank + world_size, ...`` of a single-process sampler (dev sharding)."""

    def __init__(self, sampler, rank: int, world_size: int) -> None:
        self.sampler, self.rank, self.world_size = sampler, rank, world_size
        self.position = 0

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.position = 0

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, in order (as the sampler's)."""
        return self.sampler.rank_batches()[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        self.position = 0
        yield from self.rank_batches()

    def __len__(self) -> int:
        return len(self.rank_batches())


def shard_for_validation(loader: ResumableLoader, ctx: DistributedContext) -> ResumableLoader:
    """Give this rank its strided share of a loader built for one process."""
    if ctx.is_distributed:
        loader.sampler = StridedBatches(loader.sampler, ctx.rank, ctx.world_size)
    return loader


def error_counts(refs: list[str], hyps: list[str]) -> dict[str, int]:
    """Word and character (spaces removed) error counts and reference lengths."""
    ref_words, hyp_words = [words_of(r) for r in refs], [words_of(h) for h in hyps]
    ref_chars, hyp_chars = [chars_of(r) for r in refs], [chars_of(h) for h in hyps]
    return {
        "word_errors": sum(align_error_counts(ref_words, hyp_words)),
        "words": sum(map(len, ref_words)),
        "char_errors": sum(align_error_counts(ref_chars, hyp_chars)),
        "chars": sum(map(len, ref_chars)),
    }


def _batch_weight(key: str, batch: dict) -> float:
    if key.startswith("acc"):
        return float((batch["token_lens"] + 1).sum())
    return float(len(batch["ids"]))


@torch.no_grad()
def validate(model: nn.Module, loader: ResumableLoader, tokenizer: Tokenizer,
             device: torch.device, precision: Precision, ctx: DistributedContext,
             ) -> dict[str, float]:
    """Dev metrics (``loss``, every other term, ``wer``, ``cer``, ``utterances``)."""
    was_training = model.training
    model.eval()
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # term -> [sum, weight]
    counts = {"word_errors": 0, "words": 0, "char_errors": 0, "chars": 0, "utterances": 0}
    blank_id = getattr(model, "blank_id", 0)
    try:
        loader.set_epoch(0)
        batches = iter(loader)
        while True:
            with rng_isolated():
                batch = next(batches, None)
            if batch is None:
                break
            feats, feat_lens = batch["feats"].to(device), batch["feat_lens"].to(device)
            tokens, token_lens = batch["tokens"].to(device), batch["token_lens"].to(device)
            with precision.autocast():
                out = model(feats, feat_lens, tokens, token_lens)
            for key, value in out.items():
                if torch.is_tensor(value) and value.numel() == 1:
                    weight = _batch_weight(key, batch)
                    sums[key][0] += float(value) * weight
                    sums[key][1] += weight
            with precision.autocast():  # the CTC head too: under bf16/fp16 enc is low precision
                enc, enc_lens = model.encode(feats, feat_lens)
                hyps = _greedy(model, enc, enc_lens, blank_id)
            refs = [tokenizer.decode(row[:n].tolist())
                    for row, n in zip(batch["tokens"], batch["token_lens"].tolist())]
            for key, value in error_counts(refs, [tokenizer.decode(h) for h in hyps]).items():
                counts[key] += value
            counts["utterances"] += len(batch["ids"])
    finally:
        model.train(was_training)
    return _combine(gather_objects((dict(sums), counts), ctx))


def _greedy(model: nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor,
            blank_id: int) -> list[list[int]]:
    """The quick hypotheses dev WER is computed from: CTC greedy, or transducer greedy for
    a transducer alone (a model without a CTC head)."""
    if getattr(model, "ctc", None) is not None:
        nbest = ctc_greedy_search(model.ctc_log_probs(enc), enc_lens, blank_id)  # fp32
    else:
        nbest = transducer_greedy_search(model.transducer, enc, enc_lens)
    return [list(hyps[0].tokens) for hyps in nbest]


def _combine(shares: list[tuple[dict, dict]]) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    counts: dict[str, int] = defaultdict(int)
    for share_sums, share_counts in shares:
        for key, (total, weight) in share_sums.items():
            sums[key][0] += total
            sums[key][1] += weight
        for key, value in share_counts.items():
            counts[key] += value
    metrics = {key: total / weight for key, (total, weight) in sums.items() if weight > 0}
    metrics["wer"] = 100.0 * counts["word_errors"] / max(counts["words"], 1)
    metrics["cer"] = 100.0 * counts["char_errors"] / max(counts["chars"], 1)
    metrics["utterances"] = counts["utterances"]
    return metrics
