"""Transcription speed: eager PyTorch vs the exported model (onnxruntime, TorchScript) on the
CPU, with 1 and 2 threads, and the exported model's size.

    .venv/bin/python benchmarks/transcribe_export.py --exp exp/synth_conformer \\
        --manifest data/synth/test.jsonl
    .venv/bin/python benchmarks/transcribe_export.py --exp exp/synth_conformer \\
        --manifest data/synth/test.jsonl --methods ctc_prefix_beam --threads 1 --long

Exports the experiment's model (--checkpoint, default its averaged model) to ONNX and
TorchScript in a temporary directory, then transcribes every recording of the manifest
with each runtime, method and thread count (``asrkit.inference.Transcriber``: reading,
resampling, features, encoder, search, alignment and stitching, all included), best of
--repeats runs after one warm-up, and prints RTF = wall time / audio duration, the WER
against the manifest's text and whether the hypotheses equal the eager model's.
--long also transcribes the whole set joined into one recording (windows and stitching)
and prints its WER beside the per-file one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asrkit.data.audio import load_audio
from asrkit.data.manifest import read_manifest
from asrkit.inference.export import export_model
from asrkit.inference.transcriber import Transcriber
from asrkit.scoring.wer import score_texts


def directory_megabytes(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def timed_transcribe(transcriber: Transcriber, paths: list[str], repeats: int):
    transcriber.transcribe(paths[:2])  # warm-up (onnxruntime's first run, allocator)
    best, results = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        results = transcriber.transcribe(paths)
        best = min(best, time.perf_counter() - start)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", type=Path, required=True, help="a trained experiment")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--manifest", type=Path, required=True, help="the recordings")
    parser.add_argument("--methods", nargs="+", default=["ctc_prefix_beam",
                                                         "attention_rescoring"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--long", action="store_true", help="also the set as one recording")
    args = parser.parse_args()

    utterances = read_manifest(args.manifest)
    paths = [str(u.audio) for u in utterances]
    refs = {str(i): u.text for i, u in enumerate(utterances)}
    audio = sum(u.duration for u in utterances)
    print(f"{len(paths)} recordings, {audio:.0f} s of audio; model {args.exp} "
          f"({args.checkpoint or 'averaged'})")
    with tempfile.TemporaryDirectory() as tmp:
        models = {"eager": args.exp}
        for runtime in ("onnx", "torchscript"):
            start = time.perf_counter()
            report = export_model(args.exp, Path(tmp) / runtime, runtime, args.checkpoint)
            graphs = sum((report.out_dir / f).stat().st_size
                         for f in (p.name for p in report.out_dir.iterdir() if p.is_file())
                         if not f.endswith(".json")) / 1e6
            print(f"export {runtime}: {time.perf_counter() - start:.1f} s, graphs "
                  f"{graphs:.1f} MB, directory {directory_megabytes(report.out_dir):.1f} MB, "
                  f"max |exported - eager| {report.max_abs_diff}")
            models[runtime] = report.out_dir
        print("\n| method | runtime | threads | RTF | WER % | = eager |\n|---|---|---:|---:|---:|---|")
        for method in args.methods:
            eager_texts = None
            for threads in args.threads:
                torch.set_num_threads(threads)
                for runtime, model_dir in models.items():
                    checkpoint = args.checkpoint if runtime == "eager" else None
                    transcriber = Transcriber.load(model_dir, checkpoint, method,
                                                   threads=threads)
                    wall, results = timed_transcribe(transcriber, paths, args.repeats)
                    texts = [getattr(r, "text", "") for r in results]
                    eager_texts = texts if runtime == "eager" else eager_texts
                    wer = score_texts(refs, dict(zip(refs, texts))).words.rate
                    print(f"| {method} | {runtime} | {threads} | {wall / audio:.4f} | "
                          f"{wer:.2f} | {texts == eager_texts} |", flush=True)
        if args.long:
            joined = Path(tmp) / "joined.wav"
            sf.write(str(joined), np.concatenate([load_audio(p).numpy() for p in paths]), 16000)
            torch.set_num_threads(max(args.threads))
            for method in args.methods:
                transcriber = Transcriber.load(args.exp, args.checkpoint, method)
                start = time.perf_counter()
                result, = transcriber.transcribe([joined])
                wall = time.perf_counter() - start
                wer = score_texts({"all": " ".join(refs.values())}, {"all": result.text})
                print(f"one {audio:.0f} s recording, {method}: {result.windows} windows, "
                      f"RTF {wall / audio:.4f}, WER {wer.words.rate:.2f} %")


if __name__ == "__main__":
    main()
