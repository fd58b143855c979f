"""Writing transcripts: plain text, JSON, SRT subtitles and NIST CTM.

    write_text(transcripts, out, with_source=True)  # "<source>\\t<text>" per recording
    write_json(transcript, out)                     # one JSON object per line (JSON Lines)
    write_srt(transcript, out)                      # one recording's subtitles
    write_ctm(transcript, out)                      # "<file> 1 <start> <duration> <word> <conf>"

- **text**: the transcript; with several recordings each line is ``<source>\\t<text>``.
- **json**: per recording one line holding an object: ``source``, ``text``, ``duration``,
  ``score``, ``windows``, ``words`` and ``tokens`` (each with ``text``, ``start``, ``end``
  in seconds and ``confidence``, the mean token posterior); a recording that failed is
  ``{"source", "error"}``.
- **srt**: SubRip cues (index, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text, blank line) of at
  most ``MAX_CUE_WORDS`` words and ``MAX_CUE_SECONDS``, a new cue after a pause of
  ``CUE_PAUSE`` seconds.
- **ctm**: NIST CTM as sclite reads it (``<file> <channel> <begin> <duration> <word>
  <confidence>``, times in seconds), one line per word; ``<file>`` is the recording's file
  stem with whitespace replaced (``asrkit transcribe`` adds ``_`` to a stem already used by
  another recording of the run), the channel 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from asrkit.inference.result import Failure, Transcript, Word

FORMATS = ("text", "json", "srt", "ctm")
MAX_CUE_WORDS = 12
MAX_CUE_SECONDS = 6.0
CUE_PAUSE = 1.0


def write_text(results: Iterable[Transcript], out: TextIO, with_source: bool) -> None:
    out.writelines(f"{t.source}\t{t.text}\n" if with_source else f"{t.text}\n" for t in results)


def write_json(result: Transcript | Failure, out: TextIO) -> None:
    entry = result.to_dict() if isinstance(result, Transcript) else \
        {"source": result.source, "error": result.reason}
    out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def srt_time(seconds: float) -> str:
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def subtitle_cues(words: list[Word]) -> list[list[Word]]:
    """Words grouped into cues (module docstring)."""
    cues: list[list[Word]] = []
    for word in words:
        cue = cues[-1] if cues else None
        if cue is None or len(cue) >= MAX_CUE_WORDS or word.end - cue[0].start > MAX_CUE_SECONDS \
                or word.start - cue[-1].end > CUE_PAUSE:
            cues.append([word])
        else:
            cue.append(word)
    return cues


def write_srt(result: Transcript, out: TextIO, joiner: str = " ") -> None:
    for number, cue in enumerate(subtitle_cues(result.words), start=1):
        end = max(cue[-1].end, cue[0].start + 0.001)
        out.write(f"{number}\n{srt_time(cue[0].start)} --> {srt_time(end)}\n"
                  f"{joiner.join(w.text for w in cue)}\n\n")


def ctm_name(source: str) -> str:
    """A recording's name as one CTM field (and an SRT file's name): its file stem (one
    path component, whatever the path holds: a directory named ``<..`` is a directory);
    for audio in memory (``<array N>``, a stream's ``<stream>``) the name inside the
    brackets; whitespace replaced by _."""
    stem = source.strip("<>") if _IN_MEMORY.fullmatch(source) else Path(source).stem
    return re.sub(r"\s+", "_", stem) or "recording"


_IN_MEMORY = re.compile(r"<[^/\\]*>")  # no path separator: not a file's path


def write_ctm(result: Transcript, out: TextIO, name: str | None = None) -> None:
    """``name``: the recording's CTM name (default: ``ctm_name`` of its source)."""
    name = name or ctm_name(result.source)
    out.writelines(f"{name} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.text} "
                  f"{w.confidence:.4f}\n" for w in result.words)
