"""Audio I/O with soundfile (wav, flac, ...) and resampling with torchaudio.

`torchaudio.load` would need torchcodec and FFmpeg; soundfile reads the formats speech
corpora ship in and reports durations from the file header without decoding.
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

# libsndfile's SF_COUNT_MAX: the header gives no length (e.g. FLAC with total_samples=0,
# which is also how an empty FLAC is written)
UNKNOWN_LENGTH = 2**63 - 1


class AudioError(ValueError):
    """Audio cannot be read or is empty; the message names the file."""


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(sample_rate, num_frames) read from the header only."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise AudioError(f"{path}: unreadable audio ({_short(e)})") from None
    if info.frames >= UNKNOWN_LENGTH:
        raise AudioError(f"{path}: unreadable audio (header gives no length)")
    return info.samplerate, info.frames


def audio_duration(path: str | os.PathLike, start: float | None = None, end: float | None = None) -> float:
    """Duration in seconds of a file, or of its [start, end) segment; raises on empty audio."""
    sample_rate, frames = audio_info(path)
    total = frames / sample_rate
    seg_start = start or 0.0
    seg_end = total if end is None else min(end, total)
    duration = seg_end - seg_start
    if frames == 0 or duration <= 0:
        raise AudioError(f"{path}: empty audio" + (f" segment [{start}, {end})" if start is not None else ""))
    return duration


def load_audio(
    path: str | os.PathLike,
    start: float | None = None,
    end: float | None = None,
    sample_rate: int = 16000,
) -> torch.Tensor:
    """Read a mono waveform as float32 in [-1, 1], shape (samples,), resampled to `sample_rate`.

    Multi-channel audio keeps the first channel. `start`/`end` (seconds) select a segment.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            file_rate = f.samplerate
            first = round((start or 0.0) * file_rate)
            last = f.frames if end is None else min(f.frames, round(end * file_rate))
            f.seek(first)
            data = f.read(max(last - first, 0), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:
        raise AudioError(f"{path}: unreadable audio ({_short(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio")
    wave = torch.from_numpy(np.ascontiguousarray(data[:, 0]))
    if file_rate != sample_rate:
        wave = AF.resample(wave, file_rate, sample_rate)
    return wave


def write_wav(path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a mono float waveform as 16-bit PCM wav."""
    data = wave.numpy() if isinstance(wave, torch.Tensor) else wave
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16")


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
