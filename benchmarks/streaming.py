"""Latency of streaming recognition (asrkit.inference.streaming) on one CPU thread.

    .venv/bin/python benchmarks/streaming.py --exp exp/synth_conformer_streaming \
        --manifest data/synth/test.jsonl --chunk-sizes 16 8 4 --num-utts 50

Each utterance of the manifest is fed to a StreamingRecognizer in pieces of ``--piece``
seconds, as fast as it computes (no sleeping), and timed per call. Printed per chunk size:

- **first partial**: audio time at which the first non-empty partial text appeared, plus the
  compute time spent until then (mean over utterances): how long after the speaker started
  a listener first sees text, on a machine that keeps up;
- **ms / chunk**: mean compute time of a call that ran one encoder chunk (features, encoder
  chunk with caches, CTC, the prefix beam step);
- **final ms**: mean time of ``finish()`` (the last chunk and, with ``--rescore``, the
  attention rescoring of the N-best): the wait after the speaker stops;
- **RTF**: all compute / all audio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", type=Path, required=True, help="a streaming experiment")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[16, 8, 4])
    parser.add_argument("--num-utts", type=int, default=50)
    parser.add_argument("--piece", type=float, default=0.1, help="seconds of audio per call")
    parser.add_argument("--rescore", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def stream_utterance(recognizer, audio: torch.Tensor, rate: int, piece: float) -> dict:
    """Timings of one utterance streamed through ``recognizer`` (reset first)."""
    recognizer.reset()
    step = max(1, int(piece * rate))
    chunk_ms, compute, first = [], 0.0, None
    for start in range(0, audio.numel(), step):
        chunks_before = recognizer.chunks
        t0 = time.perf_counter()
        text = recognizer.accept(audio[start:start + step])
        spent = time.perf_counter() - t0
        compute += spent
        if recognizer.chunks > chunks_before:
            chunk_ms.append(1000 * spent / (recognizer.chunks - chunks_before))
        if first is None and text:
            first = min(start + step, audio.numel()) / rate + compute
    t0 = time.perf_counter()
    recognizer.finish()
    final = time.perf_counter() - t0
    return {"chunk_ms": chunk_ms, "compute": compute + final, "final_ms": 1000 * final,
            "first": first, "seconds": audio.numel() / rate}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from asrkit.data.audio import load_audio
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding.experiment import load_experiment
    from asrkit.inference.streaming import StreamingRecognizer

    exp = load_experiment(args.exp, args.checkpoint)
    utterances = read_manifest(args.manifest)[:args.num_utts]
    print(f"{args.exp}: {len(utterances)} utterances of {args.manifest}, pieces of "
          f"{args.piece} s, {args.threads} thread(s), rescore {args.rescore}")
    print("| chunk (encoder frames) | first partial (s) | ms / chunk | final ms | RTF |")
    print("|---:|---:|---:|---:|---:|")
    for chunk_size in args.chunk_sizes:
        recognizer = StreamingRecognizer.from_experiment(exp, chunk_size=chunk_size,
                                                         rescore=args.rescore)
        rate = recognizer.extractor.sample_rate
        runs = []
        with torch.inference_mode():
            for utt in utterances:
                audio = load_audio(utt.audio, utt.start, utt.end, rate)
                runs.append(stream_utterance(recognizer, audio, rate, args.piece))
        firsts = [r["first"] for r in runs if r["first"] is not None]
        chunk_ms = [ms for r in runs for ms in r["chunk_ms"]]
        rtf = sum(r["compute"] for r in runs) / sum(r["seconds"] for r in runs)
        print(f"| {chunk_size} | {statistics.mean(firsts):.2f} | "
              f"{statistics.mean(chunk_ms):.1f} | "
              f"{statistics.mean(r['final_ms'] for r in runs):.1f} | {rtf:.4f} |")


if __name__ == "__main__":
    main()
