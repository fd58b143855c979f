"""Decode every utterance of a test set with one or more methods, timing each.

Unlike training, nothing is filtered: every utterance of the manifest gets a hypothesis,
in manifest order. An utterance whose audio cannot be read, is shorter than one fbank
window or leaves no encoder frame gets the empty hypothesis (and is listed in ``failed``),
so scoring counts it as deletions instead of decoding crashing or silently dropping it.

Batches are built here, not by the training sampler: utterances sorted by duration
(longest first, so an out-of-memory batch shows at once), at most ``batch_size`` per batch
and at most ``max_frames`` padded fbank frames (batch × longest); an utterance longer than
``max_frames`` is decoded alone. The encoder and CTC head run once per batch; each method
searches on their output.

Long utterances: CTC searches cost time linear in the length, but the attention-based
ones (``attention``, ``attention_rescoring``, ``joint``) grow with its square (their output
length bounded by ``max_len_ratio`` x encoder frames): an utterance longer than
``LONG_UTTERANCE_SECONDS`` decoded with one of them gets a warning naming it. A 5-minute
utterance of a random-weight synth model took 3.5 s of CTC prefix beam search and ~50 s of
rescoring on 2 CPU cores; recordings that long belong to ``asrkit transcribe``, which cuts
them into windows.

RTF (real-time factor) per method = (feature extraction + encoder + CTC head + that
method's search) / audio duration: the shared work is counted in full for every method, so
each figure is what decoding with that method alone would cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.dataset import ASRDataset, collate_batch
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import Utterance
from asrkit.decoding.decoding_chunk import DecodingChunk
from asrkit.decoding.precision import FP32, DecodePrecision
from asrkit.decoding.search import SearchMethod
from asrkit.models.asr_model import ASRModel
from asrkit.text.base import Tokenizer

log = logging.getLogger(__name__)

LONG_UTTERANCE_SECONDS = 60.0

# frames every batch is padded to at least, so that the conv subsampling (up to 8x) of an
# utterance decoded alone never sees fewer frames than its kernels (padding is masked)
MIN_BATCH_FRAMES = 32
AS_CONFIGURED = DecodingChunk()  # no chunk arguments: the encoder as configured


@dataclass
class SetDecodeResult:
    refs: dict[str, str]                           # id -> reference text, manifest order
    hyps: dict[str, dict[str, str]]                # method -> id -> hypothesis text
    rtf: dict[str, float]                          # method -> real-time factor
    audio_seconds: float
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    shared_rtf: float = 0.0  # features + encoder + CTC head alone, included in every rtf


def make_batches(num_frames: Sequence[int], batch_size: int, max_frames: int) -> list[list[int]]:
    """Indices grouped longest first: each batch holds <= batch_size utterances and
    len(batch) * longest <= max_frames (a single longer utterance forms its own batch)."""
    if batch_size < 1 or max_frames < 1:
        raise ValueError(f"batch_size and max_frames must be >= 1, got {batch_size}, {max_frames}")
    order = sorted(range(len(num_frames)), key=lambda i: (-num_frames[i], i))
    batches: list[list[int]] = []
    for index in order:
        if batches:
            batch = batches[-1]
            longest = max(num_frames[batch[0]], 1)  # the first is the longest
            if len(batch) < batch_size and (len(batch) + 1) * longest <= max_frames:
                batch.append(index)
                continue
        batches.append([index])
    return batches


def decode_utterances(
    model: ASRModel,
    tokenizer: Tokenizer,
    utterances: Sequence[Utterance],
    extractor: FbankExtractor,
    methods: Mapping[str, SearchMethod],
    cmvn: GlobalCMVN | None = None,
    batch_size: int = 32,
    max_frames: int = 30000,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    chunk: DecodingChunk = AS_CONFIGURED,
    precision: DecodePrecision = FP32,
) -> SetDecodeResult:
    """Decode ``utterances`` with every method (by name); the model must already be on
    ``device``. ``chunk``: the streaming encoder's chunk mask (asrkit.decoding.decoding_chunk;
    default: the encoder as configured); ``precision``: the autocast the encoder and the
    searches run under (asrkit.decoding.precision; features are computed in fp32)."""
    model.eval()
    refs = {utt.id: utt.text for utt in utterances}
    hyps: dict[str, dict[str, str]] = {name: dict.fromkeys(refs, "") for name in methods}
    search_time = dict.fromkeys(hyps, 0.0)
    shared_time, failed = 0.0, []
    dataset = ASRDataset(utterances, [[] for _ in utterances], extractor, cmvn=cmvn)
    frames = [extractor.frames_for_duration(utt.duration) for utt in utterances]
    batches = make_batches(frames, batch_size, max_frames)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches,
                                         collate_fn=collate_batch, num_workers=num_workers)
    needs_ctc = any(m.needs_ctc for m in methods.values())
    attention_based = [name for name, m in methods.items() if m.needs_decoder]
    for utt in utterances:
        if attention_based and utt.duration > LONG_UTTERANCE_SECONDS:
            log.warning("utterance %s is %.0f s long: %s grow with the square of its length; "
                        "`asrkit transcribe` cuts long recordings into windows", utt.id,
                        utt.duration, ", ".join(attention_based))
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            for utt_id, reason in batch["failed"]:
                log.warning("utterance %s: %s; its hypothesis is empty", utt_id, reason)
            failed += batch["failed"]
            done += len(batch["ids"]) + len(batch["failed"])
            if batch["ids"]:
                with precision.autocast():
                    encoded = _encode(model, batch, device, needs_ctc, failed, chunk)
                shared_time += _elapsed(start, device)
                for name, method in methods.items():
                    start = time.perf_counter()
                    if encoded is not None:
                        ids, enc, enc_lens, ctc = encoded
                        with precision.autocast():
                            nbest = method(model, enc, enc_lens, ctc)
                        for utt_id, hyp_list in zip(ids, nbest):
                            text = tokenizer.decode(hyp_list[0].tokens) if hyp_list else ""
                            hyps[name][utt_id] = text
                    search_time[name] += _elapsed(start, device)
            else:
                shared_time += _elapsed(start, device)
            log.info("decoded %d/%d utterances", done, len(utterances))
            start = time.perf_counter()
    audio = sum(utt.duration for utt in utterances)
    rtf = {name: (shared_time + t) / max(audio, 1e-9) for name, t in search_time.items()}
    return SetDecodeResult(refs, hyps, rtf, audio, failed, shared_time / max(audio, 1e-9))


def _encode(model: ASRModel, batch: dict, device: str | torch.device, needs_ctc: bool,
            failed: list[tuple[str, str]], chunk: DecodingChunk):
    """Encode a batch -> (ids, enc, enc_lens, ctc_log_probs or None) of the utterances left
    with at least one encoder frame (the others are added to ``failed``), or None."""
    enc, enc_lens, ctc, keep = encode_batch(model, batch["feats"].to(device),
                                            batch["feat_lens"].to(device), needs_ctc, chunk)
    ids = [uid for uid, k in zip(batch["ids"], keep.tolist()) if k]
    for uid, k in zip(batch["ids"], keep.tolist()):
        if not k:
            log.warning("utterance %s: too short for the encoder; its hypothesis is empty", uid)
            failed.append((uid, "no encoder frames (too short)"))
    if not ids:
        return None
    return ids, enc, enc_lens, ctc


def encode_batch(model: Any, feats: torch.Tensor, feat_lens: torch.Tensor,
                 needs_ctc: bool = True, chunk: DecodingChunk = AS_CONFIGURED,
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The encoder (and CTC head) on a padded batch, as every decode runs them.

    feats (B, T, F), feat_lens (B,) -> (enc (B', T', D), enc_lens (B',), CTC
    log-probabilities (B', T', V) or None, keep (B,) bool): the rows left with at least one
    encoder frame (B' = keep.sum()), without the padding no row needs. The batch is padded
    to MIN_BATCH_FRAMES first. ``model``: an ASRModel or anything with its ``encode`` and
    ``ctc_log_probs`` (asrkit.inference's exported models); ``chunk``: the chunk mask of a
    streaming encoder (asrkit.decoding.decoding_chunk; default: as the encoder is
    configured)."""
    if feats.size(1) < MIN_BATCH_FRAMES:
        feats = F.pad(feats, (0, 0, 0, MIN_BATCH_FRAMES - feats.size(1)))
    enc, enc_lens = model.encode(feats, feat_lens, **chunk.encode_kwargs())  # (B, T', D)
    keep = enc_lens > 0
    if not bool(keep.any()):
        return enc[:0], enc_lens[:0], None, keep
    if not bool(keep.all()):
        enc, enc_lens = enc[keep], enc_lens[keep]
    enc = enc[:, : int(enc_lens.max())]  # drop the padding no utterance needs
    ctc = model.ctc_log_probs(enc) if needs_ctc else None
    return enc, enc_lens, ctc, keep


def _elapsed(start: float, device: str | torch.device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start
