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
import sys
import time
from pathlib import Path

from asrkit.cli_checks import check_device, check_not_an_input, check_out_file
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
    p.add_argument("--channel", type=int, help="keep this channel (from 0; negative: from "
                                               "the end) instead of mixing all channels down")
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
    from asrkit.inference.transcribe_files import open_writer, transcribe_files
    from asrkit.inference.transcriber import Transcriber
    from asrkit.inference.windows import WindowSettings

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
            check_not_an_input(args.out, paths, "--out", "one of the audio files to transcribe")
    except (AudioPathError, ValueError) as e:
        return _fail(one_line(e), 2)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.streaming:
        return _transcribe_streaming(args, paths)
    streaming_only = [flag for flag, value in (
        ("--chunk-size", args.chunk_size), ("--left-chunks", args.left_chunks),
        ("--realtime", args.realtime or None), ("--rescore", args.rescore or None),
        ("--piece", args.piece)) if value is not None]
    if streaming_only:
        return _fail(f"{streaming_only[0]}: only with --streaming", 2)
    overrides = list(args.search)
    overrides += [f"beam={args.beam}"] if args.beam is not None else []
    overrides += [f"ctc_weight={args.ctc_weight}"] if args.ctc_weight is not None else []
    try:
        transcriber = Transcriber.load(args.model, args.checkpoint, args.method, overrides,
                                       args.device, args.trust_module, args.threads,
                                       args.precision, windows=windows,
                                       batch_size=args.batch_size, channel=args.channel)
    except (ConfigError, FileNotFoundError, HydraException, OmegaConfBaseException) as e:
        return _fail(one_line(e), 2)  # a bad argument: a missing model, an unknown method
    except (OSError, ValueError, RuntimeError) as e:
        return _fail(one_line(e), 1)  # a model that cannot be read or run

    show = args.progress == "true" or (args.progress == "auto" and len(paths) > 1
                                       and sys.stderr.isatty())
    progress, start = FileProgress(len(paths), show), time.perf_counter()
    with open_writer(args.out, args.format, len(paths)) as write:
        try:
            audio, failed = transcribe_files(transcriber, paths, write, progress, _report)
        except (AudioError, OSError, RuntimeError) as e:
            progress.close()
            return _fail(one_line(e), 1)
    progress.close()
    said = transcriber.precision.describe()
    print(summary_line(len(paths), failed, audio, time.perf_counter() - start)
          + (f"; {said}" if said else ""), file=sys.stderr)
    return 1 if failed else 0


def _transcribe_streaming(args: argparse.Namespace, paths: list[Path]) -> int:
    """``--streaming``: each file through a StreamingRecognizer, partial texts on stderr."""
    from asrkit.checkpoint_io import CorruptCheckpointError
    from asrkit.inference.exported_dir import ExportedDir
    from asrkit.inference.progress import summary_line
    from asrkit.inference.streaming_search import STREAMING_METHODS
    from asrkit.inference.transcribe_files import load_streaming, open_writer, stream_files

    if args.precision != "fp32":
        return _fail("--precision: --streaming decodes in fp32", 2)
    if args.method is not None and args.method not in STREAMING_METHODS:
        return _fail(f"--method {args.method}: --streaming decodes with "
                     f"{', '.join(STREAMING_METHODS)} (and --rescore)", 2)
    if args.search:
        return _fail("--search: not with --streaming (its options are --method, --beam, "
                     "--rescore, --ctc-weight)", 2)
    if args.model.is_dir() and ExportedDir.holds_export(args.model):
        return _fail(f"--streaming: {args.model} is an exported model; stream with the "
                     f"experiment directory", 2)
    given = {"chunk_size": args.chunk_size, "left_chunks": args.left_chunks, "beam": args.beam}
    try:
        recognizer = load_streaming(args.model, args.checkpoint, args.device, args.trust_module,
                                    args.method, rescore=args.rescore, ctc_weight=args.ctc_weight,
                                    **{k: v for k, v in given.items() if v is not None})
    except CorruptCheckpointError as e:  # the file, not the command (as offline)
        return _fail(one_line(e), 1)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        return _fail(one_line(e), 2)
    except (OSError, RuntimeError) as e:
        return _fail(one_line(e), 1)
    feeding = {"realtime": args.realtime, "channel": args.channel}
    feeding |= {"piece_seconds": args.piece} if args.piece is not None else {}
    start = time.perf_counter()
    with open_writer(args.out, args.format, len(paths)) as write:
        audio, failed = stream_files(recognizer, paths, write, _report,
                                     timed=args.format != "text", **feeding)
    print(summary_line(len(paths), failed, audio, time.perf_counter() - start), file=sys.stderr)
    return 1 if failed else 0


def _fail(message: str, status: int) -> int:
    print(f"asrkit transcribe: {message}", file=sys.stderr)
    return status


def _report(reason: str) -> None:
    """A file that failed: one line on stderr, the run goes on."""
    _fail(reason, 1)


def _check_numbers(args: argparse.Namespace) -> None:
    """A usage error for a count or length that cannot be meant (before the model loads)."""
    for flag, value, least in (("--threads", args.threads, 1), ("--batch-size", args.batch_size, 1),
                               ("--beam", args.beam, 1), ("--chunk-size", args.chunk_size, 1),
                               ("--left-chunks", args.left_chunks, -1)):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
    if args.piece is not None and not args.piece > 0:
        raise ValueError(f"--piece must be > 0 seconds, got {args.piece}")
