"""From what the user gives (paths, or waveforms as arrays) to the stream of windows that
are decoded: each input is opened (asrkit.inference.recording) and cut into windows
(asrkit.inference.windows) one at a time, so that a batch can hold the windows of several
short recordings or of one long one, and nothing holds a whole long recording.

    for item in segments(["a.wav", wave_array], sample_rate=16000):
        if isinstance(item, InputFailure): ...   # item.index, item.failure (one line)
        else: ...                                # a Segment: item.wave, item.offset, item.keep

An input that cannot be read (unreadable, empty, truncated, NaN/inf samples, a channel it
does not have, shorter than one feature frame) becomes an ``InputFailure`` naming it; the
inputs after it are still read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from asrkit.config import one_line
from asrkit.data.audio import AudioError, float_samples, to_mono
from asrkit.inference.recording import Recording
from asrkit.inference.result import Failure
from asrkit.inference.windows import DEFAULT_WINDOWS, WindowSettings, windows

AudioInput = str | os.PathLike | np.ndarray | torch.Tensor


@dataclass
class Segment:
    index: int                 # the input it belongs to
    number: int                # its window number within the input
    wave: torch.Tensor         # (samples,) at the model's rate, context included
    offset: float              # seconds: where wave[0] lies in the recording
    keep: tuple[float, float]  # seconds of the recording this window owns
    last: bool                 # the input's final window
    duration: float            # the whole recording's seconds


@dataclass
class InputFailure:
    index: int
    failure: Failure


class ArrayRecording:
    """A waveform in memory, as a Recording: (samples,) or (samples, channels) at
    ``rate``, float in [-1, 1] or integer PCM (scaled: asrkit.data.audio.float_samples),
    mixed down (or ``channel`` picked) and resampled to ``sample_rate``."""

    def __init__(self, wave: np.ndarray | torch.Tensor, rate: int, sample_rate: int,
                 channel: int | None, name: str) -> None:
        data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
        data = float_samples(data, name)
        if data.ndim not in (1, 2) or data.shape[0] == 0:
            raise AudioError(f"{name}: expected (samples,) or (samples, channels) audio with "
                             f"samples, got shape {tuple(data.shape)}")
        if data.ndim == 1:
            data = data[:, None]
        if data.shape[1] > data.shape[0]:
            raise AudioError(f"{name}: shape {tuple(data.shape)} has more channels than "
                             f"samples: audio is (samples, channels), as soundfile reads it; "
                             f"transpose a (channels, samples) tensor (torchaudio's layout)")
        mono = torch.from_numpy(to_mono(data, channel, name))
        self.wave = mono if rate == sample_rate else AF.resample(mono, rate, sample_rate)
        self.sample_rate = sample_rate
        self.duration = data.shape[0] / rate

    @property
    def num_samples(self) -> int:
        return self.wave.numel()

    def read(self, start: int, end: int) -> torch.Tensor:
        return self.wave[max(start, 0): max(end, 0)]


def source_name(item: AudioInput, index: int) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else f"<array {index}>"


def segments(inputs: Sequence[AudioInput], sample_rate: int,
             settings: WindowSettings = DEFAULT_WINDOWS, channel: int | None = None,
             array_rate: int | None = None, min_samples: int = 1, grid: int = 1,
             ) -> Iterator[Segment | InputFailure]:
    """The windows of every input in order (module docstring). ``array_rate``: the rate of
    inputs given as arrays (default ``sample_rate``); ``min_samples``: the shortest audio
    that gives a feature frame; ``grid``: samples per encoder frame (windows.windows)."""
    for index, item in enumerate(inputs):
        name = source_name(item, index)
        try:
            if isinstance(item, (str, os.PathLike)):
                if not Path(item).exists():
                    raise AudioError(f"{name}: no such file")
                if Path(item).is_dir():
                    raise AudioError(f"{name}: is a directory")
                recording = Recording.open(item, sample_rate, channel)
            else:
                recording = ArrayRecording(item, array_rate or sample_rate, sample_rate,
                                           channel, name)
            if recording.num_samples < min_samples:
                raise AudioError(f"{name}: too short ({recording.num_samples} samples at "
                                 f"{sample_rate} Hz, less than one feature frame)")
            for number, (window, wave) in enumerate(windows(recording, settings, grid)):
                yield Segment(index, number, wave, window.start / sample_rate,
                              (window.keep_start / sample_rate, window.keep_end / sample_rate),
                              window.last, recording.duration)
        except (AudioError, OSError) as e:
            reason = one_line(e)
            yield InputFailure(index, Failure(name, reason if name in reason
                                              else f"{name}: {reason}"))
