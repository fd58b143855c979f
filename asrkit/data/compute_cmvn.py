"""Accumulate global CMVN statistics over a manifest, reading audio in DataLoader workers."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asrkit.data.cmvn import CMVNAccumulator, GlobalCMVN
from asrkit.data.dataset import ASRDataset
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import read_manifest

log = logging.getLogger(__name__)


def compute_global_cmvn(
    manifest: str | Path, extractor: FbankExtractor, num_workers: int = 0
) -> tuple[GlobalCMVN, list[tuple[str, str]]]:
    """Stats over every readable utterance (no augmentation, no dither), and the failures."""
    utterances = read_manifest(manifest)
    dataset = ASRDataset(utterances, [[] for _ in utterances], extractor)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=num_workers)
    accumulator = CMVNAccumulator(extractor.num_mel_bins)
    failed = []
    for item in loader:
        if "error" in item:
            log.warning("cmvn: skipped utterance %s: %s", item["id"], item["error"])
            failed.append((item["id"], item["error"]))
        else:
            accumulator.add(item["feats"])
    return accumulator.result(), failed
