"""Cutting a long recording into windows that are decoded separately and stitched.

A recording longer than ``window`` seconds is cut at low-energy points: each cut lies in
the last ``search`` seconds before the window's nominal end, at the 10 ms frame whose
energy, averaged over ``SMOOTH_FRAMES`` frames around it, is lowest (a pause between words
where there is one). Each window is decoded with ``overlap`` seconds of context on both
sides of the part it owns, so a word at a cut is heard whole by the windows on both
sides; ``keep`` is the owned part, and stitching (asrkit.inference.stitching) keeps each
word from the one window that owns its midpoint. Cutting in pauses and deciding by the
midpoint is what chunked long-form recognisers do (Chiu et al. 2019 on long-form
recognition; NeMo's and WeNet's chunked decoding cut the same way).

    for window, wave in windows(recording, WindowSettings(window=20, overlap=1)):
        window.start, window.end      # samples decoded (context included)
        window.keep_start, window.keep_end   # samples this window owns

Windows are produced one at a time, each read once (``recording.read``), so memory does not
grow with the recording's length. A recording no longer than ``window + min_tail`` seconds
is one window; so is the end of a longer one, so that no window is a fragment.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

FRAME_SECONDS = 0.01     # energy frames
SMOOTH_FRAMES = 11       # energy averaged over 110 ms around each candidate cut
MIN_WINDOW = 1.0         # seconds: shorter windows give encoders too few frames to decode


class Readable(Protocol):
    sample_rate: int

    @property
    def num_samples(self) -> int: ...

    def read(self, start: int, end: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class WindowSettings:
    window: float = 20.0     # seconds owned by a window at most (before the cut search)
    overlap: float = 1.0     # seconds of context decoded on each side of the owned part
    search: float = 4.0      # seconds before the nominal end searched for a pause
    min_tail: float = 2.0    # a remainder shorter than this joins the last window

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.window, self.overlap, self.search,
                                              self.min_tail)):
            raise ValueError(f"window settings must be finite numbers of seconds: {self}")
        if self.window < MIN_WINDOW:
            raise ValueError(f"window: {self.window} s is shorter than {MIN_WINDOW} s")
        if self.overlap < 0 or self.search < 0 or self.min_tail < 0:
            raise ValueError(f"window settings must not be negative: {self}")
        if self.search >= self.window:
            raise ValueError(f"window settings: search ({self.search} s) must be shorter "
                             f"than the window ({self.window} s)")


DEFAULT_WINDOWS = WindowSettings()


@dataclass(frozen=True)
class Window:
    start: int        # first sample decoded (context included)
    end: int          # one past the last sample decoded
    keep_start: int   # first sample owned
    keep_end: int     # one past the last sample owned
    last: bool        # the recording's final window


def windows(recording: Readable, settings: WindowSettings = DEFAULT_WINDOWS, grid: int = 1,
            ) -> Iterator[tuple[Window, torch.Tensor]]:
    """(window, its samples (end - start,)) from the start of ``recording`` to its end.
    ``grid``: samples per encoder frame; every window starts at a multiple of it (its left
    context a little longer), so that all windows' encoder frames fall at the same times
    and a word at a seam is timed alike on both sides."""
    rate, total = recording.sample_rate, recording.num_samples
    length, context = round(settings.window * rate), round(settings.overlap * rate)
    search, tail = round(settings.search * rate), round(settings.min_tail * rate)
    grid = max(grid, 1)
    pos = 0
    while pos < total:
        start = max(pos - context, 0) // grid * grid
        if total - pos <= length + tail:
            yield Window(start, total, pos, total, True), recording.read(start, total)
            return
        end = min(pos + length + context, total)
        wave = recording.read(start, end)
        zone_start = pos + length - search
        cut = zone_start + quietest_point(wave[zone_start - start: pos + length - start], rate)
        stop = min(cut + context, total)
        yield Window(start, stop, pos, cut, False), wave[: stop - start]
        pos = cut


def quietest_point(wave: torch.Tensor, sample_rate: int) -> int:
    """The sample offset in ``wave`` of the centre of its quietest stretch: the 10 ms frame
    whose mean energy, smoothed over SMOOTH_FRAMES frames, is lowest (the first such)."""
    hop = max(round(FRAME_SECONDS * sample_rate), 1)
    frames = wave.numel() // hop
    if frames == 0:
        return wave.numel() // 2
    energy = wave[: frames * hop].view(frames, hop).double().pow(2).mean(dim=1)  # (frames,)
    smooth = F.avg_pool1d(energy.view(1, 1, -1), SMOOTH_FRAMES, stride=1,
                          padding=SMOOTH_FRAMES // 2, count_include_pad=False).view(-1)
    return int(smooth.argmin()) * hop + hop // 2
