"""One recording to transcribe, read in blocks: mono, at the model's sample rate, whatever
the file's rate and channel count, with memory independent of the recording's length.

    recording = Recording.open("talk.flac", sample_rate=16000)          # channels mixed down
    recording = Recording.open("call.wav", sample_rate=16000, channel=1)  # the second channel
    recording.num_samples, recording.duration
    wave = recording.read(0, 16000 * 30)     # (samples,) float32: the first 30 s
    with recording.reading_forward():        # ranges that move forward, from one open
        for start in range(0, recording.num_samples, 1600):   # file read in order
            piece = recording.read(start, start + 1600)

Any format soundfile reads (wav, flac, ogg, ...). Channels are mixed down to their mean
(``channel=None``, the default) or one is picked (asrkit.data.audio.to_mono). A file at
another rate is resampled with ``torchaudio.functional.resample`` (windowed sinc) block by
block: each block is read with a margin of context on both sides, starting on a multiple
of the rates' reduced period (file_rate / gcd), so that its samples fall exactly on the
whole-file resampling grid, and the margin is cut off after resampling. The blocks then
equal resampling the whole file (to float rounding), without holding it in memory.

Each ``read`` opens the file and seeks; within ``reading_forward()`` the file stays open
and is read in order, in blocks of ``FORWARD_BLOCK`` frames (each range starting at or
after the one before), which for a compressed format is the exact way: libsndfile's MP3
seek is not exact to the sample (a stream read in 0.1 s pieces with a seek each differed by
up to 0.02 from the whole file, and libmpg123 printed an error per bad seek), nor are its
reads of some sizes.

Checked when opened: readable, not empty, not truncated (a WAV file shorter than its header
declares), the channel exists; when read: no NaN/inf samples. Each failure is an
AudioError naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asrkit.data.audio import AudioError, audio_header, to_mono, unreadable

# context read around a block before resampling: the sinc kernel's reach (6 zero crossings
# of the lower rate) is below 1 ms at 8 kHz and above
RESAMPLE_MARGIN_SECONDS = 0.01
# reading_forward reads the file in blocks of this many frames: libsndfile 1.2's MP3 reads of
# other sizes (1000, 3000 frames) can differ from reading the whole file (by up to 0.01),
# reads of 4096 or 16384 frames do not
FORWARD_BLOCK = 16384


@dataclass
class Recording:
    path: Path
    file_rate: int
    file_frames: int
    channels: int
    sample_rate: int          # the rate read() returns
    channel: int | None       # None: the mean of all channels
    _forward: _ForwardReader | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike, sample_rate: int,
             channel: int | None = None) -> Recording:
        """Check the file's header (and, for WAV, its size) without reading its samples."""
        info = audio_header(path)
        if info.frames == 0:
            raise AudioError(f"{path}: empty audio")
        if channel is not None and not -info.channels <= channel < info.channels:
            raise AudioError(f"{path}: has {info.channels} channel(s); channel {channel} does "
                             f"not exist")
        return cls(Path(path), info.sample_rate, info.frames, info.channels, sample_rate,
                   channel)

    @property
    def num_samples(self) -> int:
        """Samples at ``sample_rate`` (as resampling the whole file gives)."""
        return math.ceil(self.file_frames * self.sample_rate / self.file_rate)

    @property
    def duration(self) -> float:
        return self.file_frames / self.file_rate

    def read(self, start: int, end: int) -> torch.Tensor:
        """Samples [start, end) at ``sample_rate`` (clipped to the recording), mono float32."""
        start, end = max(start, 0), min(end, self.num_samples)
        if end <= start:
            return torch.zeros(0)
        if self.file_rate == self.sample_rate:
            return torch.from_numpy(self._read_file(start, end))
        common = math.gcd(self.file_rate, self.sample_rate)
        file_step, out_step = self.file_rate // common, self.sample_rate // common
        margin = math.ceil(RESAMPLE_MARGIN_SECONDS * self.sample_rate / out_step) + 1
        first_period = max(start // out_step - margin, 0)  # in reduced periods
        last_period = math.ceil(end / out_step) + margin
        block = self._read_file(first_period * file_step, last_period * file_step)
        wave = AF.resample(torch.from_numpy(block), self.file_rate, self.sample_rate)
        offset = start - first_period * out_step
        return wave[offset: offset + end - start].contiguous()

    @contextlib.contextmanager
    def reading_forward(self) -> Iterator[Recording]:
        """Within it, ``read`` takes its samples from one open file read in order: each
        range must start at or after the previous one's start (a stream, windows in
        order)."""
        try:
            handle = sf.SoundFile(str(self.path))
        except (RuntimeError, OSError) as e:
            raise unreadable(self.path, e) from None
        self._forward = _ForwardReader(handle)
        try:
            yield self
        finally:
            self._forward = None
            handle.close()

    def _read_file(self, first: int, last: int) -> np.ndarray:
        """File frames [first, last) (clipped), mono float32."""
        first, last = max(first, 0), min(last, self.file_frames)
        try:
            if self._forward is not None:
                data = self._forward.frames(first, last)
            else:
                with sf.SoundFile(str(self.path)) as f:
                    f.seek(first)
                    data = f.read(max(last - first, 0), dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as e:
            raise unreadable(self.path, e) from None
        if data.shape[0] < last - first:
            raise AudioError(f"{self.path}: truncated: {data.shape[0]} of {last - first} "
                             f"samples read from frame {first}")
        return to_mono(data, self.channel, self.path)


class _ForwardReader:
    """An open file read in order, keeping the frames from the last range's start on."""

    def __init__(self, handle: sf.SoundFile) -> None:
        self.handle = handle
        self.start = 0  # the file frame the buffer starts at
        self.buffer = np.zeros((0, handle.channels), dtype=np.float32)

    def frames(self, first: int, last: int) -> np.ndarray:
        if first < self.start:
            raise ValueError(f"reading_forward: frame {first} is before {self.start}, where "
                             "the previous range started")
        end = self.start + len(self.buffer)
        if last > end:  # whole blocks (see FORWARD_BLOCK)
            count = -(-(last - end) // FORWARD_BLOCK) * FORWARD_BLOCK
            more = self.handle.read(count, dtype="float32", always_2d=True)
            self.buffer = np.concatenate([self.buffer, more])
        self.buffer = self.buffer[first - self.start:]
        self.start = first
        return self.buffer[:max(last - first, 0)]
