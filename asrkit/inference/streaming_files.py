"""Feeding an audio file to a StreamingRecognizer as a microphone would (``asrkit transcribe
--streaming``): in pieces of ``piece_seconds``, optionally at real time (each piece handed
over only once it would have been recorded), with every change of the partial text shown.

    recognizer = StreamingRecognizer.from_experiment(exp, chunk_size=16)
    result = stream_file(recognizer, "talk.wav", realtime=True,
                         on_partial=PartialPrinter(sys.stderr), timed=True)
    result.text, result.duration, result.transcript.words    # timed: json / srt / ctm

The file is read in blocks at the model's rate and mixed down (asrkit.inference.recording),
so any format, rate and channel count goes. The latency this shows is that of the chunks:
the text of a word appears once the chunk holding its last frame (plus the input layer's
right context) has arrived.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple, TextIO

from asrkit.data.audio import AudioError
from asrkit.inference.recording import Recording
from asrkit.inference.result import Transcript
from asrkit.inference.streaming import StreamingRecognizer


class StreamedFile(NamedTuple):
    text: str         # the final text
    duration: float   # seconds of audio
    transcript: Transcript | None = None  # with word and token times (``timed``)


def stream_file(recognizer: StreamingRecognizer, path: str | os.PathLike,
                piece_seconds: float = 0.1, realtime: bool = False,
                on_partial: Callable[[str], None] | None = None,
                channel: int | None = None, timed: bool = False) -> StreamedFile:
    """``path`` streamed through ``recognizer`` (reset first); ``on_partial`` is called
    with each new partial text; ``timed``: also the Transcript with word and token times
    (StreamingRecognizer.transcript). A file too short to give one encoder frame is an
    AudioError, as in offline transcription."""
    if piece_seconds <= 0:
        raise ValueError(f"piece_seconds must be > 0, got {piece_seconds}")
    rate = recognizer.extractor.sample_rate
    recording = Recording.open(path, rate, channel)
    piece = max(1, round(piece_seconds * rate))
    recognizer.reset()
    start, shown = time.monotonic(), ""
    with recording.reading_forward():  # one open file read in order: exact for MP3 too
        for begin in range(0, recording.num_samples, piece):
            end = min(begin + piece, recording.num_samples)
            if realtime:  # the piece exists once its last sample has been recorded
                time.sleep(max(0.0, start + end / rate - time.monotonic()))
            text = recognizer.accept(recording.read(begin, end))
            if on_partial is not None and text != shown:
                on_partial(text)
                shown = text
    text = recognizer.finish()
    if recognizer.chunks == 0:  # as offline transcription reports it
        raise AudioError(f"{path}: too short for the encoder (no encoder frames from "
                         f"{recording.duration:.3f} s)")
    transcript = recognizer.transcript(str(path), recording.duration) if timed else None
    return StreamedFile(text, recording.duration, transcript)


class PartialPrinter:
    """Shows partial texts on ``out``: overwritten in place (``\\r``) on a terminal, one
    line per change otherwise (a log, a pipe). ``done()`` ends the line on a terminal."""

    def __init__(self, out: TextIO, prefix: str = "") -> None:
        self.out, self.prefix = out, prefix
        self.in_place = out.isatty()
        self.width = 0  # characters of the line shown, to blank a longer one

    def __call__(self, text: str) -> None:
        line = f"{self.prefix}{text}"
        if self.in_place:
            self.out.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.in_place and self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.out.flush()
        self.width = 0
