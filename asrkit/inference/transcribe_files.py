"""What ``asrkit transcribe`` does with its files once the model is loaded: each file's
result written in the chosen format as it comes, each failure reported and counted
(asrkit/bin/transcribe.py parses and checks the arguments, and maps errors to exit
statuses).

    with open_writer(out, "json", len(paths)) as write:
        audio, failed = transcribe_files(transcriber, paths, write, progress, report)
    recognizer = load_streaming(exp_dir, chunk_size=16, rescore=True)
    with open_writer(None, "text", len(paths)) as write:
        audio, failed = stream_files(recognizer, paths, write, report, realtime=True)

``report(message)`` receives one line per failed file (the command prints it on stderr);
a failed file gets its JSON line (``{"source", "error"}``) and nothing in the other formats.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from asrkit.config import one_line
from asrkit.data.audio import AudioError
from asrkit.inference import formats
from asrkit.inference.progress import FileProgress
from asrkit.inference.result import Failure, Transcript
from asrkit.inference.streaming import StreamingRecognizer
from asrkit.inference.streaming_files import PartialPrinter, stream_file

Writer = Callable[[Any, Any], None]  # (a Transcript or Failure, what made it: for its words)


@contextlib.contextmanager
def open_writer(out: Path | None, fmt: str, count: int) -> Iterator[Writer]:
    """A writer(result, transcriber) for the format, to ``out`` or stdout (``transcriber``:
    anything with ``words``, a Transcriber or a StreamingRecognizer). srt for several files
    writes ``out/<name>.srt`` each (``out`` a directory); ctm names each recording in its
    lines; recordings of equal names (``a/x.wav``, ``b/x.wav``) get a ``_`` added in both.
    A file ``out`` is replaced only once a recording was transcribed."""
    used: set[str] = set()

    def unique_name(source: str) -> str:
        name = formats.ctm_name(source)
        while name in used:
            name += "_"
        used.add(name)
        return name

    if fmt == "srt" and count > 1:
        out.mkdir(parents=True, exist_ok=True)

        def write_srt_file(result, transcriber) -> None:
            if isinstance(result, Failure):
                return
            with (out / f"{unique_name(result.source)}.srt").open("w", encoding="utf-8") as f:
                formats.write_srt(result, f, transcriber.words.joiner)

        yield write_srt_file
        return
    # to a hidden file beside ``out``, renamed over it once a recording was transcribed: a
    # run in which every recording fails (or that is stopped first) leaves ``out`` as it was
    partial = out.with_name(f".{out.name}.tmp{os.getpid()}") if out is not None else None
    stream = partial.open("w", encoding="utf-8") if partial is not None else sys.stdout
    written = []

    def write(result, transcriber) -> None:
        if not isinstance(result, Failure):
            written.append(result.source)
        if fmt == "json":
            formats.write_json(result, stream)
        elif isinstance(result, Failure):
            return
        elif fmt == "text":
            formats.write_text([result], stream, with_source=count > 1)
        elif fmt == "srt":
            formats.write_srt(result, stream, transcriber.words.joiner)
        else:
            formats.write_ctm(result, stream, unique_name(result.source))
        stream.flush()

    try:
        yield write
    finally:
        if partial is not None:
            stream.close()
            if written:
                os.replace(partial, out)
            else:
                partial.unlink()


def transcribe_files(transcriber, paths: Sequence[Path], write: Writer,
                     progress: FileProgress, report: Callable[[str], None]) -> tuple[float, int]:
    """Every file through a Transcriber (batched windows); returns (seconds of audio
    transcribed, files failed). A file that cannot be read is reported and the rest go on."""
    audio, failed = 0.0, 0
    for done, result in enumerate(transcriber.stream([str(p) for p in paths]), 1):
        if isinstance(result, Failure):
            failed += 1
            progress.close()
            report(result.reason)
        else:
            audio += result.duration
        write(result, transcriber)
        progress.update(done, audio)
    return audio, failed


def load_streaming(model_dir: Path, checkpoint: str | None = None, device: str = "cpu",
                   trusted_modules: Sequence[str] = (), method: str | None = None,
                   **options) -> StreamingRecognizer:
    """A StreamingRecognizer on an experiment's model (``method``: None for the model's
    default streaming search); options as StreamingRecognizer's (chunk_size, left_chunks,
    beam, rescore, ctc_weight)."""
    from asrkit.decoding.experiment import load_experiment
    from asrkit.inference.streaming_search import check_streaming_method, default_streaming_method

    exp = load_experiment(model_dir, checkpoint, device, trusted_modules)
    method = method or default_streaming_method(exp.model)
    check_streaming_method(exp.model, method, "--method")
    return StreamingRecognizer.from_experiment(exp, method=method, **options)


def stream_files(recognizer: StreamingRecognizer, paths: Sequence[Path], write: Writer,
                 report: Callable[[str], None], timed: bool = False,
                 **feeding) -> tuple[float, int]:
    """Every file through ``recognizer`` as a stream (asrkit.inference.streaming_files;
    ``feeding``: piece_seconds, realtime, channel), partial texts on stderr (prefixed by the
    file with several); returns (seconds of audio, files failed)."""
    audio, failed = 0.0, 0
    for path in paths:
        printer = PartialPrinter(sys.stderr, f"{path}\t" if len(paths) > 1 else "")
        try:
            result = stream_file(recognizer, path, on_partial=printer, timed=timed, **feeding)
        except (AudioError, OSError, ValueError, RuntimeError) as e:
            printer.done()
            failed += 1
            message = one_line(e)
            reason = message if message.startswith(str(path)) else f"{path}: {message}"
            report(reason)
            write(Failure(str(path), reason), recognizer)
            continue
        printer.done()
        audio += result.duration
        write(result.transcript or Transcript(str(path), result.text, duration=result.duration),
              recognizer)
    return audio, failed
