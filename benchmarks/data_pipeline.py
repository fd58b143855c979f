"""Throughput of the training data pipeline (audio -> speed perturbation -> fbank -> CMVN
-> SpecAugment -> padded batches) for 0, 1 and 2 DataLoader workers.

    .venv/bin/python benchmarks/data_pipeline.py                      # makes a synth corpus
    .venv/bin/python benchmarks/data_pipeline.py --manifest data/synth/train.jsonl

CMVN statistics are computed over the manifest first (not timed), as training does with
`asrkit cmvn`. Prints utterances/s and audio seconds per wall second (x real time) per
worker count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.compute_cmvn import compute_global_cmvn
from asrkit.data.features import FbankExtractor
from asrkit.data.loader import build_loader
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.text.registry import train_tokenizer

CONF = Path(__file__).resolve().parent.parent / "conf" / "data" / "default.yaml"


def data_config() -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF))


def train_cmvn(manifest: Path, workers: int) -> GlobalCMVN:
    """Global CMVN over `manifest` with the config's features, as `asrkit cmvn` computes it."""
    cfg = data_config()
    feats = cfg["features"]
    extractor = FbankExtractor(cfg["sample_rate"], feats["num_mel_bins"], feats["frame_length"],
                               feats["frame_shift"])
    cmvn, _ = compute_global_cmvn(manifest, extractor, workers)
    return cmvn


def measure(manifest: Path, cmvn: GlobalCMVN, workers: int, epochs: int) -> tuple[float, float]:
    utterances = read_manifest(manifest)
    tokenizer = train_tokenizer([u.text for u in utterances], "char", None)
    cfg = data_config()
    cfg["num_workers"] = workers
    loader = build_loader(manifest, tokenizer, cfg, train=True, cmvn=cmvn)
    utts, audio, start = 0, 0.0, time.perf_counter()
    durations = {u.id: u.duration for u in utterances}
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            utts += len(batch["ids"])
            audio += sum(durations[i] for i in batch["ids"])
    elapsed = time.perf_counter() - start
    return utts / elapsed, audio / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=None)
    parser.add_argument("--num-utts", type=int, default=300, help="size of the synth corpus made")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            run_preparer("synth", None, Path(tmp), num_utts=args.num_utts, seed=0)
            manifest = Path(tmp) / "train.jsonl"
        utterances = read_manifest(manifest)
        hours = sum(u.duration for u in utterances) / 3600
        print(f"manifest {manifest.name}: {len(utterances)} utterances, {hours * 60:.1f} min of audio; "
              f"torch threads {torch.get_num_threads()}; {args.epochs} epochs each")
        cmvn = train_cmvn(manifest, max(args.workers))
        print(f"CMVN over {cmvn.utterances} utterances ({cmvn.frames} frames), not timed")
        print(f"{'workers':>8} {'utts/s':>10} {'x real time':>12}")
        for workers in args.workers:
            utt_rate, realtime = measure(manifest, cmvn, workers, args.epochs)
            print(f"{workers:>8} {utt_rate:>10.1f} {realtime:>12.1f}")


if __name__ == "__main__":
    main()
