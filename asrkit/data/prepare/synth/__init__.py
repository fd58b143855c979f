"""synth: an English speech corpus made on the spot with espeak-ng and flite (no download).

Sentences come from a small grammar over ~600 words (sentences.py), spoken by up to 18
training voices and 4 held-out ones (voices.py) at a drawn rate, pitch, level and, by default,
with mild white or pink noise (SNR 20..40 dB). Splits: train, dev and test (train voices,
sentences never in train) and test_unseen (held-out voices). The same --seed gives
byte-identical manifests and wav files, whatever --nj.

    asrkit prepare synth --out data/synth --num-utts 2000
    asrkit prepare synth --out data/synth --num-utts 200 --seed 1 --noise-snr off

Writes <out>/{train,dev,test,test_unseen}.jsonl and <out>/wav/<split>/<id>.wav (16 kHz mono
16-bit); audio paths in the manifests are relative to <out>, so the directory can move.
The audio is made in <out>/wav/.partial; once every manifest is written to a temp file,
each written split's directory is swapped in as wav/<split> together with the manifests'
renames, all or none, with Ctrl-C and SIGTERM held for those milliseconds (swap.py): a run
that fails or is interrupted leaves an earlier run's manifests and their audio as they were,
or, interrupted once they are all in place, the new ones, complete; one killed outright is
mended by the next run. One run at a time per --out (a lock); files of the user's own in
wav/<split> move along; a wav/<split> that is a symbolic link is refused.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from multiprocessing.pool import ThreadPool
from pathlib import Path

from asrkit.data.manifest import Utterance
from asrkit.data.prepare.summary import PrepareSummary
from asrkit.data.prepare.synth.swap import clean, committed, install, start

__all__ = ["add_arguments", "clean", "committed", "install", "prepare"]  # run_preparer's

log = logging.getLogger(__name__)

DEFAULT_NOISE_SNR = (20.0, 40.0)


class _NoiseSnr(argparse.Action):
    """--noise-snr LOW HIGH (dB) or --noise-snr off."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values == ["off"]:
            setattr(namespace, self.dest, None)
            return
        try:
            low, high = (float(v) for v in values)
        except ValueError:
            parser.error(f"{option_string} takes LOW HIGH in dB or 'off', got {' '.join(values)}")
        if not (math.isfinite(low) and math.isfinite(high)):
            parser.error(f"{option_string} takes finite dB values, got {' '.join(values)}")
        if low > high:
            parser.error(f"{option_string}: LOW ({low}) exceeds HIGH ({high})")
        setattr(namespace, self.dest, (low, high))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-utts", type=int, default=1000,
                        help="total utterances over all splits (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--nj", type=int, default=None,
                        help="parallel synthesis jobs (default: all cores)")
    parser.add_argument("--dev-fraction", type=float, default=0.08,
                        help="share of utterances in dev, at least one (default 0.08)")
    parser.add_argument("--test-fraction", type=float, default=0.08,
                        help="share in test: train voices, new sentences (default 0.08)")
    parser.add_argument("--test-unseen-fraction", type=float, default=0.08,
                        help="share in test_unseen: held-out voices (default 0.08)")
    parser.add_argument("--noise-snr", nargs="+", action=_NoiseSnr, default=DEFAULT_NOISE_SNR,
                        metavar="DB", help="additive noise SNR range LOW HIGH in dB, or 'off' "
                        "(default 20 40)")


def prepare(
    src: Path | None,
    out: Path,
    summary: PrepareSummary,
    num_utts: int = 1000,
    seed: int = 0,
    nj: int | None = None,
    dev_fraction: float = 0.08,
    test_fraction: float = 0.08,
    test_unseen_fraction: float = 0.08,
    noise_snr: tuple[float, float] | None = DEFAULT_NOISE_SNR,
) -> dict[str, list[Utterance]]:
    """Synthesise the corpus into `out`; `src` is unused. Returns the utterances per split."""
    # imported here so that `python -m asrkit.data.prepare.synth.<module>` runs cleanly
    from asrkit.data.prepare.synth.plan import SPLITS, plan_corpus, split_sizes
    from asrkit.data.prepare.synth.synthesize import SAMPLE_RATE, SynthesisError, synthesize
    from asrkit.data.prepare.synth.voices import discover_voices

    nj = _usable_cores() if nj is None else nj
    if nj < 1:
        raise ValueError(f"--nj must be at least 1, got {nj}")
    if noise_snr and noise_snr[0] > noise_snr[1]:
        raise ValueError(f"noise SNR range {tuple(noise_snr)} has LOW above HIGH")
    sizes = split_sizes(num_utts, dev_fraction, test_fraction, test_unseen_fraction)
    voices = discover_voices()
    for note in voices.notes:
        log.warning("synth: %s", note)
    plan = plan_corpus(seed, sizes, voices, tuple(noise_snr) if noise_snr else None)
    staging = start(out, SPLITS)  # new audio lands here; wav/<split> changes once it is done

    def run(item) -> int | str:  # a PlannedUtterance
        try:
            return synthesize(item.request, staging / item.split / Path(item.audio).name)
        except SynthesisError as e:
            return str(e)

    try:
        with ThreadPool(min(nj, len(plan))) as pool:
            results = pool.map(run, plan, chunksize=1)
    except BaseException:
        clean(out, committed=False)
        raise
    splits: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    for item, result in zip(plan, results):
        if isinstance(result, str):
            summary.skip(item.split, item.id, result)
            continue
        duration = result / SAMPLE_RATE
        summary.keep(item.split, duration)
        splits[item.split].append(Utterance(id=item.id, audio=item.audio, duration=duration,
                                            text=item.text, speaker=item.request.voice.speaker))
    return splits


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # the cores this process may run on (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
