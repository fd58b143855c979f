"""Audio I/O with soundfile (wav, flac, ...) and resampling with torchaudio.

`torchaudio.load` would need torchcodec and FFmpeg; soundfile reads the formats speech
corpora ship in and reports durations from the file header without decoding.

Nothing read is trusted blindly: a WAV file shorter than its header declares (a truncated
copy: libsndfile quietly reads what is there) and audio with NaN or infinite samples (a
float WAV can hold them) are errors naming the file, so that an utterance is skipped with
its reason instead of training on part of its audio with the whole transcript, or
poisoning the model.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

# libsndfile's SF_COUNT_MAX: the header gives no length (e.g. FLAC with total_samples=0,
# which is also how an empty FLAC is written)
UNKNOWN_LENGTH = 2**63 - 1


class AudioError(ValueError):
    """Audio cannot be read or is empty; the message names the file."""


@dataclass(frozen=True)
class AudioHeader:
    sample_rate: int
    frames: int
    channels: int


def audio_header(path: str | os.PathLike) -> AudioHeader:
    """Rate, frames and channels from the header, checked: unreadable or truncated (a WAV
    holding fewer frames than its header declares) is an AudioError naming the file. A FLAC
    header that gives no length is that of an empty FLAC when no audio frame follows its
    metadata (0 frames), else of a FLAC written as a stream, which libsndfile cannot read
    to its end (unreadable)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as e:  # soundfile.LibsndfileError is a RuntimeError
        raise unreadable(path, e) from None
    frames = info.frames
    if frames >= UNKNOWN_LENGTH:
        if not flac_has_audio_frames(path):
            return AudioHeader(info.samplerate, 0, info.channels)
        raise AudioError(f"{path}: unreadable audio (its header gives no length, as a FLAC "
                         f"written to a stream has: encode it again into a file)")
    declared = declared_wav_frames(path)
    if declared is not None and frames < declared:
        raise AudioError(f"{path}: truncated: its header declares {declared} samples, the file "
                         f"holds {frames}")
    return AudioHeader(info.samplerate, frames, info.channels)


def flac_has_audio_frames(path: str | os.PathLike) -> bool:
    """Whether bytes follow a FLAC file's metadata blocks (True for anything else)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(4) != b"fLaC":
            return True
        offset = 4
        while offset + 4 <= size:
            f.seek(offset)
            head = f.read(4)
            offset += 4 + int.from_bytes(head[1:4], "big")
            if head[0] & 0x80:  # the last metadata block
                return offset < size
    return True


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(sample_rate, num_frames) read from the header only (``audio_header``)."""
    header = audio_header(path)
    return header.sample_rate, header.frames


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
    channel: int | None = 0,
) -> torch.Tensor:
    """Read a mono waveform as float32 in [-1, 1], shape (samples,), resampled to `sample_rate`.

    Multi-channel audio keeps channel `channel` (0, the first, by default: what training and
    decoding read); `channel=None` mixes all channels down (their mean). `start`/`end`
    (seconds) select a segment.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            file_rate = f.samplerate
            first = round((start or 0.0) * file_rate)
            last = f.frames if end is None else min(f.frames, round(end * file_rate))
            f.seek(first)
            data = f.read(max(last - first, 0), dtype="float32", always_2d=True)
            held = f.frames
    except (RuntimeError, OSError) as e:
        raise unreadable(path, e) from None
    declared = declared_wav_frames(path)
    if declared is not None and held < declared:
        raise AudioError(f"{path}: truncated: its header declares {declared} samples, the file "
                         f"holds {held}")
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio")
    wave = torch.from_numpy(to_mono(data, channel, path))
    if file_rate != sample_rate:
        wave = AF.resample(wave, file_rate, sample_rate)
    return wave


def float_samples(data: np.ndarray, name: str | os.PathLike) -> np.ndarray:
    """Audio given as an array, as float32 in [-1, 1]: a float array as it is, integer PCM
    (int8/int16/int32 as WAV files store it, as scipy.io.wavfile reads it; uint8 centred on
    128) scaled by its full range, as soundfile and torchaudio scale it. Other dtypes
    (int64, bool, complex, ...) are an AudioError naming ``name``."""
    kind = data.dtype
    if kind.kind == "f":
        return data.astype(np.float32, copy=False)
    if kind in (np.int8, np.int16, np.int32):
        return (data / float(-np.iinfo(kind).min)).astype(np.float32)
    if kind == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    raise AudioError(f"{name}: audio samples of dtype {kind} (float, or int8/int16/int32/uint8 "
                     f"PCM, expected)")


def to_mono(data: np.ndarray, channel: int | None, path: str | os.PathLike) -> np.ndarray:
    """(frames, channels) float32 samples -> (frames,) contiguous: channel ``channel``, or
    the mean of all channels (``None``). Raises AudioError naming ``path`` for a channel the
    file does not have and for non-finite samples (NaN/inf) in what is kept."""
    channels = data.shape[1]
    if channel is not None and not -channels <= channel < channels:
        raise AudioError(f"{path}: has {channels} channel(s); channel {channel} does not exist")
    if channel is None:
        mono = data.mean(axis=1) if channels > 1 else data[:, 0]  # NaN/inf stay in the mean
    else:
        mono = data[:, channel]
    finite = np.isfinite(mono)
    if not finite.all():
        raise AudioError(f"{path}: {int((~finite).sum())} non-finite samples (NaN/inf)")
    return np.ascontiguousarray(mono, dtype=np.float32)


def declared_wav_frames(path: str | os.PathLike) -> int | None:
    """The sample frames a RIFF/WAVE header declares for its data chunk, or None (not a
    plain WAV file, or a header that declares no size, as streamed files do)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None  # a FLAC or another format: nothing more is read
            head += f.read((1 << 16) - 12)
    except OSError:
        return None
    block_align, offset = None, 12
    while offset + 8 <= len(head):
        chunk, size = head[offset:offset + 4], struct.unpack("<I", head[offset + 4:offset + 8])[0]
        if chunk == b"fmt " and offset + 22 <= len(head):
            block_align = struct.unpack("<H", head[offset + 20:offset + 22])[0]
        elif chunk == b"data":
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        offset += 8 + size + (size & 1)
    return None


def write_wav(path: str | os.PathLike, wave: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write a mono float waveform as 16-bit PCM wav."""
    data = wave.numpy() if isinstance(wave, torch.Tensor) else wave
    sf.write(str(path), np.clip(data, -1.0, 1.0), sample_rate, subtype="PCM_16")


def unreadable(path: str | os.PathLike, error: Exception) -> AudioError:
    """The AudioError for a file soundfile could not open or read: not found, or
    unreadable with soundfile's reason (it says "System error" for a missing file)."""
    if not os.path.exists(path):
        return AudioError(f"{path}: audio file not found")
    return AudioError(f"{path}: unreadable audio ({_short(error)})")


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
