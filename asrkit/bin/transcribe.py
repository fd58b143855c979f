"""Transcribe audio files with a trained or exported model (text, JSON, SRT or CTM, with timestamps).

    asrkit transcribe exp/conformer talk.wav
    asrkit transcribe exp/conformer recordings/ --format json --out talks.jsonl
    find /data -name '*.flac' | asrkit transcribe exported/ - --format ctm --out all.ctm
    asrkit transcribe exp/conformer lecture.mp3 --format srt --out lecture.srt \\
        --method ctc_prefix_beam --beam 5 --window 15
    asrkit transcribe exp/conformer call.wav --channel 1 --checkpoint avg_3.pt

MODEL is an experiment directory (`asrkit train`; --checkpoint picks a checkpoint, by
default its averaged model, else checkpoints/last.pt) or a directory written by `asrkit
export` (run with onnxruntime or TorchScript). AUDIO: files (any format soundfile reads:
wav, flac, ogg, mp3, ...), directories (searched recursively for audio files by extension)
or `-` (paths read from standard input, one a line). Any sample rate (resampled to the
model's) and channel count (mixed down; --channel N keeps channel N, from 0).

Long recordings are cut at pauses into windows of about --window seconds, each decoded
with --overlap seconds of context on both sides, in batches, and stitched: each word is
kept from the window owning its midpoint. Every word and token gets a start and end in
seconds and a confidence (a word's: the mean posterior of its tokens): with a transducer
search (transducer_greedy, transducer_modified_beam, transducer_beam) from the encoder
frames its labels were emitted at and the joint's posterior of each label there; with any
other method from CTC forced alignment of the final hypothesis. --method is any search
method of `asrkit decode` (default transducer_modified_beam when the model has a
transducer, else attention_rescoring when it has an attention decoder, else
ctc_prefix_beam); --beam, --ctc-weight and --search KEY=VALUE (e.g.
search.attention_rescoring.beam=20) set its options.

Formats: text (the transcript; `<source><TAB><text>` per line for several files), json
(one object per line per file: text, words and tokens with start, end, confidence),
srt (subtitles; several files need --out DIR: DIR/<name>.srt each), ctm (NIST CTM: `<file>
1 <start> <duration> <word> <confidence>`). A file that cannot be read (unreadable, empty,
truncated, NaN samples, too short; with --streaming too) gets one line on stderr naming it;
the others are still transcribed. A summary line (files, audio, wall time, RTF) ends the run, and a progress
bar is drawn on a terminal for several files.

Streaming (a model trained with encoder.causal: true, e.g. +experiment=synth/conformer_streaming):
`--streaming` feeds each file in pieces of --piece seconds (0.1) to a streaming recogniser
(asrkit/inference/streaming.py) that runs the encoder every --chunk-size encoder frames
(16) with --left-chunks chunks of left context (-1: all) and a search carried over the
chunks: --method transducer_modified_beam (the default for a model with a transducer,
alone or hybrid), transducer_greedy, or ctc_prefix_beam (the default otherwise; needs a CTC
head), with --beam (default 10, as offline). Partial texts go to stderr as they change
(overwritten in place on a terminal), the final result to stdout or --out in any --format
(json, srt and ctm timed as offline: CTC forced alignment for ctc_prefix_beam, the labels'
emission frames for a transducer search). --rescore rescores the final N-best with the
attention decoder (--ctc-weight: attention rescoring's CTC weight, 0.3; after a transducer
search, transducer_rescoring's, 0.2, with 0.5 on the transducer). --realtime hands the
pieces over at real time, as a microphone would.

    asrkit transcribe exp/streaming talk.wav --streaming --chunk-size 16 --realtime --rescore
    asrkit transcribe exp/transducer_streaming talk.wav --streaming --method transducer_greedy \\
        --format srt --out talk.srt

Exit status: 0 every file transcribed, 1 some file failed (or the model could not be
run), 2 usage error (a missing path or model, an unknown method or option, a count or
length that cannot be meant, a device this machine lacks, an --out that is a directory):
found before the model loads.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from asrkit.cli_checks import check_device, check_out_file
from asrkit.config import ConfigError, one_line
from asrkit.inference.formats import FORMATS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asrkit transcribe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="experiment or exported model directory")
    p.add_argument("audio", nargs="+", help="audio files, directories, or - (paths on stdin)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.add_argument("--out", type=Path, help="write here instead of stdout (srt with several "
                                            "files: a directory)")
    p.add_argument("--checkpoint", help="checkpoint of an experiment (default: its averaged "
                                        "model, else checkpoints/last.pt)")
    p.add_argument("--method", help="search method (conf/search/<name>.yaml; with --streaming: "
                                    "ctc_prefix_beam, transducer_greedy, "
                                    "transducer_modified_beam)")
    p.add_argument("--beam", type=int, help="beam of the search method")
    p.add_argument("--ctc-weight", type=float, help="CTC weight of rescoring / joint search")
    p.add_argument("--search", action="append", default=[], metavar="KEY=VALUE",
                   help="a decode config override, e.g. search.attention_rescoring.beam=20")
    p.add_argument("--channel", type=int, help="keep this channel (from 0) instead of "
                                               "mixing all channels down")
    p.add_argument("--window", type=float, default=20.0,
                   help="seconds per window (default 20, at least 1)")
    p.add_argument("--overlap", type=float, default=1.0,
                   help="seconds of context on each side of a window (default 1)")
    p.add_argument("--batch-size", type=int, default=8, help="windows decoded together")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (experiments only)")
    p.add_argument("--threads", type=int, help="intra-op threads (torch / onnxruntime)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                   help="encoder and search under autocast (experiments, not --streaming; "
                        "auto: bf16 where the CPU or GPU has it natively; default fp32)")
    p.add_argument("--progress", choices=("auto", "true", "false"), default="auto",
                   help="progress bar on stderr (auto: on a terminal, for several files)")
    p.add_argument("--streaming", action="store_true",
                   help="decode chunk by chunk as audio arrives (a causal streaming model)")
    p.add_argument("--chunk-size", type=int,
                   help="--streaming: encoder frames per chunk (default 16)")
    p.add_argument("--left-chunks", type=int,
                   help="--streaming: chunks of left context (default -1: all)")
    p.add_argument("--realtime", action="store_true",
                   help="--streaming: feed the audio at real time")
    p.add_argument("--rescore", action="store_true",
                   help="--streaming: rescore the final N-best with the attention decoder")
    p.add_argument("--piece", type=float,
                   help="--streaming: seconds of audio per piece fed (default 0.1)")
    p.add_argument("--trust-module", action="append", default=[], metavar="MODULE",
                   help="a module of your own that the model's stored config may name")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from asrkit.data.audio import AudioError
    from asrkit.inference.audio_files import AudioPathError, collect_audio
    from asrkit.inference.progress import FileProgress, summary_line
    from asrkit.inference.transcriber import Transcriber
    from asrkit.inference.windows import WindowSettings

    def fail(message: str, status: int) -> int:
        print(f"asrkit transcribe: {message}", file=sys.stderr)
        return status

    try:
        _check_numbers(args)
        check_device(args.device, "--device")
        paths = collect_audio(args.audio, sys.stdin)
        windows = WindowSettings(args.window, args.overlap, min(4.0, args.window / 2))
        if len(paths) > 1 and args.format == "srt" and (args.out is None or args.out.is_file()):
            raise AudioPathError(f"--format srt for {len(paths)} files needs --out DIR (one "
                                 f".srt per file)")
        if args.out is not None and not (args.format == "srt" and len(paths) > 1):
            check_out_file(args.out)
    except (AudioPathError, ValueError) as e:
        return fail(one_line(e), 2)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.streaming:
        if args.precision != "fp32":
            return fail("--precision: --streaming decodes in fp32", 2)
        return _transcribe_streaming(args, paths, fail)
    streaming_only = [flag for flag, value in (
        ("--chunk-size", args.chunk_size), ("--left-chunks", args.left_chunks),
        ("--realtime", args.realtime or None), ("--rescore", args.rescore or None),
        ("--piece", args.piece)) if value is not None]
    if streaming_only:
        return fail(f"{streaming_only[0]}: only with --streaming", 2)
    overrides = list(args.search)
    overrides += [f"beam={args.beam}"] if args.beam is not None else []
    overrides += [f"ctc_weight={args.ctc_weight}"] if args.ctc_weight is not None else []
    try:
        transcriber = Transcriber.load(args.model, args.checkpoint, args.method, overrides,
                                       args.device, args.trust_module, args.threads,
                                       args.precision, windows=windows,
                                       batch_size=args.batch_size, channel=args.channel)
    except (ConfigError, FileNotFoundError, HydraException, OmegaConfBaseException) as e:
        return fail(one_line(e), 2)  # a bad argument: a missing model, an unknown method
    except (OSError, ValueError, RuntimeError) as e:
        return fail(one_line(e), 1)  # a model that cannot be read or run

    show = args.progress == "true" or (args.progress == "auto" and len(paths) > 1
                                       and sys.stderr.isatty())
    progress = FileProgress(len(paths), show)
    start, audio, failed, done = time.perf_counter(), 0.0, 0, 0
    with _output(args.out, args.format, len(paths)) as writer:
        try:
            for result in transcriber.stream([str(p) for p in paths]):
                done += 1
                if hasattr(result, "reason"):
                    failed += 1
                    progress.close()
                    print(f"asrkit transcribe: {result.reason}", file=sys.stderr)
                else:
                    audio += result.duration
                writer(result, transcriber)
                progress.update(done, audio)
        except (AudioError, OSError, RuntimeError) as e:
            progress.close()
            return fail(one_line(e), 1)
    progress.close()
    said = transcriber.precision.describe()
    print(summary_line(len(paths), failed, audio, time.perf_counter() - start)
          + (f"; {said}" if said else ""), file=sys.stderr)
    return 1 if failed else 0


def _transcribe_streaming(args: argparse.Namespace, paths: list[Path], fail) -> int:
    """``--streaming``: each file through a StreamingRecognizer, partial texts on stderr."""
    from asrkit.data.audio import AudioError
    from asrkit.decoding.experiment import load_experiment
    from asrkit.inference.exported_dir import ExportedDir
    from asrkit.inference.progress import summary_line
    from asrkit.inference.result import Failure, Transcript
    from asrkit.inference.streaming import StreamingRecognizer
    from asrkit.inference.streaming_files import PartialPrinter, stream_file
    from asrkit.inference.streaming_search import (
        STREAMING_METHODS,
        check_streaming_method,
        default_streaming_method,
    )

    if args.method is not None and args.method not in STREAMING_METHODS:
        return fail(f"--method {args.method}: --streaming decodes with "
                    f"{', '.join(STREAMING_METHODS)} (and --rescore)", 2)
    if args.search:
        return fail("--search: not with --streaming (its options are --method, --beam, "
                    "--rescore, --ctc-weight)", 2)
    if args.model.is_dir() and ExportedDir.holds_export(args.model):
        return fail(f"--streaming: {args.model} is an exported model; stream with the "
                    f"experiment directory", 2)
    try:
        exp = load_experiment(args.model, args.checkpoint, args.device, args.trust_module)
        method = args.method or default_streaming_method(exp.model)
        check_streaming_method(exp.model, method, "--method")
        recognizer = StreamingRecognizer.from_experiment(
            exp, 16 if args.chunk_size is None else args.chunk_size,
            left_chunks=-1 if args.left_chunks is None else args.left_chunks,
            beam=10 if args.beam is None else args.beam, method=method, rescore=args.rescore,
            ctc_weight=args.ctc_weight)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        return fail(one_line(e), 2)
    except (OSError, RuntimeError) as e:
        return fail(one_line(e), 1)
    start, audio, failed = time.perf_counter(), 0.0, 0
    with _output(args.out, args.format, len(paths)) as writer:
        for path in paths:
            prefix = f"{path}\t" if len(paths) > 1 else ""
            printer = PartialPrinter(sys.stderr, prefix)
            try:
                result = stream_file(recognizer, path, 0.1 if args.piece is None else args.piece,
                                     args.realtime, printer, args.channel,
                                     timed=args.format != "text")
            except (AudioError, OSError, ValueError, RuntimeError) as e:
                printer.done()
                failed += 1
                message = one_line(e)
                reason = message if message.startswith(str(path)) else f"{path}: {message}"
                print(f"asrkit transcribe: {reason}", file=sys.stderr)
                writer(Failure(str(path), reason), recognizer)
                continue
            printer.done()
            audio += result.duration
            writer(result.transcript or Transcript(str(path), result.text,
                                                   duration=result.duration), recognizer)
    print(summary_line(len(paths), failed, audio, time.perf_counter() - start), file=sys.stderr)
    return 1 if failed else 0


def _check_numbers(args: argparse.Namespace) -> None:
    """A usage error for a count or length that cannot be meant (before the model loads)."""
    for flag, value, least in (("--threads", args.threads, 1), ("--batch-size", args.batch_size, 1),
                               ("--beam", args.beam, 1), ("--chunk-size", args.chunk_size, 1),
                               ("--left-chunks", args.left_chunks, -1)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
    if args.piece is not None and not args.piece > 0:
        raise ValueError(f"--piece must be > 0 seconds, got {args.piece}")


@contextlib.contextmanager
def _output(out: Path | None, fmt: str, count: int):
    """A writer(result, transcriber) for the format, to --out or stdout (``transcriber``:
    anything with ``words``, a Transcriber or a StreamingRecognizer)."""
    from asrkit.inference import formats

    if fmt == "srt" and count > 1:
        out.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()

        def write_srt_file(result, transcriber) -> None:
            if hasattr(result, "reason"):
                return
            name = formats.ctm_name(result.source)
            while name in used:
                name += "_"
            used.add(name)
            with (out / f"{name}.srt").open("w", encoding="utf-8") as f:
                formats.write_srt(result, f, transcriber.words.joiner)

        yield write_srt_file
        return
    stream = out.open("w", encoding="utf-8") if out is not None else sys.stdout

    def write(result, transcriber) -> None:
        if fmt == "json":
            formats.write_json(result, stream)
        elif hasattr(result, "reason"):
            return
        elif fmt == "text":
            formats.write_text([result], stream, with_source=count > 1)
        elif fmt == "srt":
            formats.write_srt(result, stream, transcriber.words.joiner)
        else:
            formats.write_ctm(result, stream)
        stream.flush()

    try:
        yield write
    finally:
        if out is not None:
            stream.close()
