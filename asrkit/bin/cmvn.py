"""Compute global CMVN statistics of fbank features over a training manifest.

    asrkit cmvn --manifest data/synth/train.jsonl --out data/synth/cmvn.json --nj 2

The feature options must match the `data.features` config used for training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from asrkit.cli_checks import check_out_file
from asrkit.config import one_line
from asrkit.data.compute_cmvn import compute_global_cmvn
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import ManifestError

MAX_WORKERS = 64  # loader processes: more is a typo, not a speed-up


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asrkit cmvn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="output JSON")
    p.add_argument("--num-mel-bins", type=int, default=80)
    p.add_argument("--frame-length", type=float, default=25.0, help="ms")
    p.add_argument("--frame-shift", type=float, default=10.0, help="ms")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--nj", type=int, default=min(4, os.cpu_count() or 1),
                   help="loader worker processes (0: read in this process)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        extractor = FbankExtractor(args.sample_rate, args.num_mel_bins, args.frame_length,
                                   args.frame_shift)
        if not 0 <= args.nj <= MAX_WORKERS:
            raise ValueError(f"--nj must be between 0 and {MAX_WORKERS}, got {args.nj}")
        check_out_file(args.out)
    except ValueError as e:  # an option that cannot be meant
        print(f"asrkit cmvn: {one_line(e)}", file=sys.stderr)
        return 2
    try:
        cmvn, failed = compute_global_cmvn(args.manifest, extractor, args.nj)
    except ManifestError as e:  # the manifest given is malformed: a usage error
        print(f"asrkit cmvn: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # e.g. no readable utterance at all
        print(f"asrkit cmvn: {args.manifest}: {e}", file=sys.stderr)
        return 1
    try:
        cmvn.save(args.out)
    except OSError as e:  # a full disk: the file named, the old one kept
        print(f"asrkit cmvn: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"CMVN over {cmvn.utterances} utterances ({cmvn.frames} frames, {len(failed)} unreadable) "
          f"-> {args.out}")
    return 0
