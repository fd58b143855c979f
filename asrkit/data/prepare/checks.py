"""Per-utterance checks shared by the corpus preparers.

A preparer calls `checked_utterance` for each candidate; it returns the `Utterance` or
records why it was skipped (one of the SKIP_* reasons) in the summary and returns None.
"""

from __future__ import annotations

import os

from asrkit.data.audio import AudioError, audio_duration
from asrkit.data.manifest import DURATION_DECIMALS, Utterance
from asrkit.data.prepare.summary import PrepareSummary

SKIP_EMPTY_TEXT = "empty transcript"
SKIP_NO_TEXT = "no transcript"
SKIP_MISSING_AUDIO = "missing audio"
SKIP_EMPTY_AUDIO = "empty audio"
SKIP_UNREADABLE_AUDIO = "unreadable audio"
SKIP_TRUNCATED_AUDIO = "truncated audio"  # a WAV holding less than its header declares


def checked_utterance(
    summary: PrepareSummary,
    split: str,
    utt_id: str,
    audio: str | os.PathLike,
    text: str | None,
    speaker: str,
    start: float | None = None,
    end: float | None = None,
) -> Utterance | None:
    """Validate text and audio (its header, and for WAV the file's size) and return the
    utterance, or record a skip."""
    if text is None:
        summary.skip(split, utt_id, SKIP_NO_TEXT)
        return None
    text = " ".join(text.split())
    if not text:
        summary.skip(split, utt_id, SKIP_EMPTY_TEXT)
        return None
    if not os.path.exists(audio):
        summary.skip(split, utt_id, SKIP_MISSING_AUDIO)
        return None
    try:
        duration = audio_duration(audio, start, end)
    except AudioError as e:
        reason = (SKIP_EMPTY_AUDIO if "empty audio" in str(e) else
                  SKIP_TRUNCATED_AUDIO if ": truncated: " in str(e) else SKIP_UNREADABLE_AUDIO)
        summary.skip(split, utt_id, reason)
        return None
    summary.keep(split, duration)
    if end is not None and (start or 0.0) + duration < end:  # past the end: ends with it
        end = round((start or 0.0) + duration, DURATION_DECIMALS)
    return Utterance(
        id=utt_id, audio=str(audio), duration=round(duration, DURATION_DECIMALS), text=text, speaker=speaker,
        start=start, end=end,
    )
