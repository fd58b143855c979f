"""From a manifest to batches: filtering, the bucketing sampler and DataLoader workers.

`build_loader(manifest, tokenizer, data_cfg, train=...)` reads the `data` config group
(conf/data/default.yaml) as a plain dict. Training adds speed perturbation, dither and
SpecAugment and shuffles; evaluation does none of these. The sampler packs by each
utterance's length at the slowest speed factor (`longest_frames`), so every batch stays
within `max_frames` whichever factors are drawn. `ResumableLoader` advances the
sampler's position for every batch it hands out, so its `state_dict()` resumes exactly
where the training loop stopped, whatever the workers had read ahead. Workers are not
persistent: each epoch starts them afresh with the dataset's epoch set.

A batch none of whose utterances loaded is left out of an evaluation loader; a training
loader (``keep_empty``) yields it as ``{"ids": [], "failed": [...]}`` so that every DDP
rank takes the same sequence of micro-batches (the trainer skips it on all ranks together:
a rank that silently took one batch fewer would sync its gradients at another micro-batch
than the others and mismatch their collectives).

``pin_memory`` (the trainer sets it when it trains on a GPU) has the DataLoader put each
batch in page-locked memory, so that the step's ``.to(device, non_blocking=True)`` is a copy
queued on the GPU's stream rather than a transfer the host waits for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import torch

from asrkit.data.augment import SpecAugment, speed_perturbed_length
from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.dataset import ASRDataset, collate_batch
from asrkit.data.features import FbankExtractor
from asrkit.data.filters import OutputLengths, filter_utterances
from asrkit.data.manifest import DURATION_DECIMALS, Utterance, read_manifest
from asrkit.data.sampler import BucketingBatchSampler
from asrkit.text.base import Tokenizer

log = logging.getLogger(__name__)


class LoadFailureError(RuntimeError):
    """Too many utterances failed to load in one epoch."""


class ResumableLoader:
    def __init__(self, dataset: ASRDataset, sampler: BucketingBatchSampler, num_workers: int = 0,
                 max_fail_fraction: float = 0.01, name: str = "data", keep_empty: bool = False,
                 pin_memory: bool = False):
        """keep_empty: yield a batch whose utterances all failed to load (``ids`` empty);
        pin_memory: batches in page-locked memory (for a GPU)."""
        self.dataset = dataset
        self.sampler = sampler
        self.num_workers = num_workers
        self.max_fail_fraction = max_fail_fraction
        self.name = name
        self.keep_empty = keep_empty
        self.pin_memory = pin_memory
        self.failed: list[tuple[str, str]] = []  # this epoch's failures

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.failed = []

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict]:
        self.dataset.set_epoch(self.sampler.epoch)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_sampler=self.sampler, collate_fn=collate_batch,
            num_workers=self.num_workers, persistent_workers=False, pin_memory=self.pin_memory,
        )
        # The utterances this process loads this epoch: under DDP a rank's share, so a
        # rank stops at the same fraction of what it reads as a single process would.
        share = sum(len(b) for b in self.sampler.rank_batches())
        # exact: int(0.29 * 100) would be 28
        max_failures = math.floor(Fraction(str(self.max_fail_fraction)) * share)
        for batch in loader:
            self.sampler.position += 1
            for utt_id, reason in batch["failed"]:
                log.warning("%s: skipped utterance %s: %s", self.name, utt_id, reason,
                            extra={"every_rank": True})  # its own share: each rank says it
            self.failed.extend(batch["failed"])
            if len(self.failed) > max_failures:
                utt_id, reason = self.failed[-1]
                of = (f"{share} utterances" if self.sampler.world_size == 1 else
                      f"the {share} utterances rank {self.sampler.rank} loads")
                raise LoadFailureError(
                    f"{self.name}: {len(self.failed)} of {of} failed to "
                    f"load this epoch (more than max_fail_fraction={self.max_fail_fraction}); "
                    f"last: {utt_id}: {reason}")
            if batch["ids"] or self.keep_empty:
                yield batch

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self.dataset.set_epoch(self.sampler.epoch)


def build_loader(
    manifest: str | Path,
    tokenizer: Tokenizer,
    data_cfg: dict,
    train: bool,
    cmvn: GlobalCMVN | None = None,
    rank: int = 0,
    world_size: int = 1,
    output_lengths: OutputLengths | None = None,
    pin_memory: bool = False,
    frame_per_token: bool = True,
    utterances: list[Utterance] | None = None,
) -> ResumableLoader:
    """A loader over `manifest` configured by the `data` config group (a plain dict).
    `output_lengths` is the encoder's (asrkit.models.encoder_interface): with it, utterances
    without an encoder frame are filtered out, and with `frame_per_token` (a model with CTC)
    transcripts with more tokens than encoder frames (CTC could not align them);
    `pin_memory`: batches in page-locked memory, for a GPU; `utterances`: the manifest as
    read_manifest read it, when the caller has already read it."""
    feats_cfg, filt = data_cfg["features"], data_cfg["filters"]
    extractor = FbankExtractor.from_config(data_cfg)
    if cmvn is None and data_cfg.get("cmvn"):
        cmvn = GlobalCMVN.load(data_cfg["cmvn"])
    name = Path(manifest).name
    speed = [float(f) for f in data_cfg.get("speed_perturb") or []] if train else []
    if utterances is None:
        utterances = read_manifest(manifest)
    token_ids = [tokenizer.encode(u.text) for u in utterances]
    keep, _ = filter_utterances(utterances, token_ids, extractor, filt["min_duration"],
                                filt["max_duration"], output_lengths,
                                fastest_speed=max(speed, default=1.0), name=name,
                                frame_per_token=frame_per_token)
    utterances = [utterances[i] for i in keep]
    token_ids = [token_ids[i] for i in keep]
    dataset = ASRDataset(
        utterances, token_ids, extractor, cmvn=cmvn,
        specaug=SpecAugment(**data_cfg["specaug"]) if train and data_cfg.get("specaug") else None,
        speed_factors=speed, dither=feats_cfg["dither"] if train else 0.0,
        seed=data_cfg["sampler"]["seed"])
    slowest = min(speed, default=1.0)
    lengths = [longest_frames(extractor, u.duration, slowest) for u in utterances]
    sampler_cfg = data_cfg["sampler"]
    sampler = BucketingBatchSampler(
        lengths, sampler_cfg["max_frames"], sampler_cfg["num_buckets"],
        shuffle=train and sampler_cfg["shuffle"], seed=sampler_cfg["seed"], rank=rank,
        world_size=world_size, name=name)
    return ResumableLoader(dataset, sampler, data_cfg["num_workers"],
                           data_cfg["max_fail_fraction"], name=name, keep_empty=train,
                           pin_memory=pin_memory)


def longest_frames(extractor: FbankExtractor, duration: float, slowest_speed: float) -> int:
    """An upper bound on the fbank frames of `duration` seconds played at `slowest_speed`,
    the length the sampler packs by: the manifest's duration is rounded (to DURATION_DECIMALS
    places), so half of its last place is added back, and the sample count is rounded up, as
    resampling and speed perturbation (torchaudio) round their own, so that no batch can
    exceed the budget by a frame (a 22.05 kHz file's rounded duration could otherwise fall
    short of its resampled length by a sample)."""
    slack = 0.5 * 10.0 ** -DURATION_DECIMALS
    samples = math.ceil((duration + slack) * extractor.sample_rate)
    return extractor.num_frames(speed_perturbed_length(samples, extractor.sample_rate, slowest_speed))
