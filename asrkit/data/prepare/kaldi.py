"""Kaldi data directory (wav.scp, text, optional utt2spk and segments) to one manifest.

    asrkit prepare kaldi --src data/kaldi/train --out data/mycorpus   # -> data/mycorpus/train.jsonl

Layout (https://kaldi-asr.org/doc/data_prep.html), one `<key> <value>` per line:
  wav.scp    `<rec_id> <path>`
  text       `<utt_id> <words ...>`
  utt2spk    `<utt_id> <speaker>`              optional; without it speaker = utterance id
  segments   `<utt_id> <rec_id> <start> <end>`  optional; seconds, end -1 = end of recording
The manifest is named after the data directory (`<dirname>.jsonl`). Without `segments` an
utterance is a whole recording (utt_id = rec_id); with it, utterances carry start/end.

Relative wav.scp paths are resolved against --audio-root (default: the current directory,
as Kaldi scripts run from the recipe root); manifests hold absolute paths. Piped entries
(`<command> |`, e.g. `flac -c -d -s x.flac |`) give no file whose header can be read, so
their utterances are skipped as "piped wav.scp entry (unsupported)": write the audio to
files first (e.g. with `sox` or Kaldi's `wav-copy`). Archive offsets (`x.ark:123`) are not
files either: skipped as "wav.scp archive offset (unsupported)". A segment that ends past
its recording ends with it (its `end` in the manifest too). Text is kept as written in
`text`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from asrkit.data.manifest import Utterance
from asrkit.data.prepare.checks import checked_utterance
from asrkit.data.prepare.summary import PrepareSummary

SKIP_PIPED_AUDIO = "piped wav.scp entry (unsupported)"
SKIP_ARCHIVE_AUDIO = "wav.scp archive offset (unsupported)"
ARCHIVE_OFFSET = re.compile(r"\.ark:\d+$")  # `x.ark:123`: a wav inside a Kaldi archive
SKIP_UNKNOWN_RECORDING = "recording not in wav.scp"
SKIP_NO_SEGMENT = "not in segments"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio-root", type=Path, default=None,
                        help="base for relative wav.scp paths (default: current directory)")


def read_kaldi_table(path: Path, lines: dict[str, int] | None = None) -> dict[str, str]:
    """Read `<key> <value...>` lines (value may be empty); a repeated key is an error; a
    UTF-8 byte-order mark at the start is skipped. ``lines``, if given, gets each key's
    line number."""
    table: dict[str, str] = {}
    with open(path, "rb") as f:  # decoded line by line, so that an error can name its line
        for lineno, raw in enumerate(f, 1):
            try:
                # a byte-order mark before the first key is not part of it
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at "
                                 f"byte {e.start + 1} of the line: {e.reason})") from None
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            if fields[0] in table:
                raise ValueError(f"{path}:{lineno}: duplicate key '{fields[0]}'")
            table[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
            if lines is not None:
                lines[fields[0]] = lineno
    return table


def read_segments(path: Path) -> dict[str, tuple[str, float, float | None]]:
    """utt_id -> (rec_id, start, end); end None means to the end of the recording."""
    segments: dict[str, tuple[str, float, float | None]] = {}
    lines: dict[str, int] = {}
    for utt_id, value in read_kaldi_table(path, lines).items():
        fields = value.split()
        try:
            if len(fields) != 3:
                raise ValueError
            start, end = float(fields[1]), float(fields[2])
            if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or (
                    0 <= end <= start):
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}:{lines[utt_id]}: segment '{utt_id}' should be '<utt_id> "
                             f"<rec_id> <start> <end>' with finite times, 0 <= start < end "
                             f"(end -1: to the end of the recording), got '{utt_id} {value}'"
                             ) from None
        segments[utt_id] = (fields[0], start, None if end < 0 else end)
    return segments


def prepare(
    src: Path | None, out: Path, summary: PrepareSummary, audio_root: Path | None = None,
) -> dict[str, list[Utterance]]:
    data_dir = _data_dir(src)
    split = data_dir.name
    summary.split(split)  # listed even when nothing is kept
    root = Path.cwd() if audio_root is None else Path(audio_root)
    recordings = read_kaldi_table(data_dir / "wav.scp")
    texts = read_kaldi_table(data_dir / "text")
    utt2spk_path = data_dir / "utt2spk"
    utt2spk = read_kaldi_table(utt2spk_path) if utt2spk_path.is_file() else {}
    segments_path = data_dir / "segments"
    segments = read_segments(segments_path) if segments_path.is_file() else None
    if segments is None:
        # Whole recordings: every recording (and every transcript) is a candidate.
        segments = {rec_id: (rec_id, None, None) for rec_id in recordings}
        missing = SKIP_UNKNOWN_RECORDING
    else:
        missing = SKIP_NO_SEGMENT

    utterances = []
    for utt_id in sorted(set(segments) | set(texts)):
        if utt_id not in segments:
            summary.skip(split, utt_id, missing)
            continue
        rec_id, start, end = segments[utt_id]
        location = recordings.get(rec_id)
        if location is None:
            summary.skip(split, utt_id, SKIP_UNKNOWN_RECORDING)
        elif location.endswith("|"):
            summary.skip(split, utt_id, SKIP_PIPED_AUDIO)
        elif ARCHIVE_OFFSET.search(location) and not (root / location).exists():
            summary.skip(split, utt_id, SKIP_ARCHIVE_AUDIO)
        else:
            utt = checked_utterance(summary, split, utt_id, (root / location).absolute(),
                                    texts.get(utt_id), utt2spk.get(utt_id, utt_id), start, end)
            if utt is not None:
                utterances.append(utt)
    return {split: utterances}


def _data_dir(src: Path | None) -> Path:
    if src is None:
        raise FileNotFoundError("--src is required: a Kaldi data directory with wav.scp and text")
    data_dir = Path(os.path.abspath(src))  # normalises "." and ".." so the name is real
    for name in ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise FileNotFoundError(f"{data_dir}: not a Kaldi data directory (no {name})")
    return data_dir
