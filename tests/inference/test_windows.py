"""Cutting long recordings: the owned parts tile the recording, windows stay bounded, and
cuts fall in pauses."""

from __future__ import annotations

import itertools

import pytest
import torch

from asrkit.inference.segments import ArrayRecording
from asrkit.inference.windows import WindowSettings, quietest_point, windows


def noise_with_pauses(seconds: float, pauses: list[float], rate: int = 16000) -> torch.Tensor:
    """White noise with 0.2 s of silence centred at each of ``pauses`` (seconds)."""
    wave = torch.randn(int(seconds * rate), generator=torch.Generator().manual_seed(0)) * 0.3
    for centre in pauses:
        wave[int((centre - 0.1) * rate): int((centre + 0.1) * rate)] = 0.0
    return wave


def test_windows_tile_the_recording_and_cut_in_pauses():
    pauses = [7.3, 16.0, 25.0, 33.0, 41.0]  # one in each search zone (the last 4 s of 10)
    recording = ArrayRecording(noise_with_pauses(50.0, pauses), 16000, 16000, None, "x")
    settings = WindowSettings(window=10.0, overlap=1.0, search=4.0, min_tail=2.0)
    cut = list(windows(recording, settings))
    keeps = [(w.keep_start, w.keep_end) for w, _ in cut]
    assert keeps[0][0] == 0 and keeps[-1][1] == recording.num_samples
    assert all(a[1] == b[0] for a, b in itertools.pairwise(keeps))  # no gap, no overlap
    assert [w.last for w, _ in cut] == [False] * (len(cut) - 1) + [True]
    for window, wave in cut:
        assert wave.numel() == window.end - window.start
        assert torch.equal(wave, recording.wave[window.start: window.end])
        assert window.start == max(window.keep_start - 16000, 0)
        assert window.end - window.start <= (10.0 + 2 * 1.0 + 2.0) * 16000
    # every cut lies inside one of the pauses
    for _, end in keeps[:-1]:
        assert min(abs(end / 16000 - p) for p in pauses) < 0.1


def test_windows_start_on_the_encoder_frame_grid():
    """With ``grid`` (samples per encoder frame: 640 for a 4x encoder on 10 ms fbank at
    16 kHz), every window starts at a multiple of it, so all windows' frames fall at the same
    times; the owned parts are unchanged and still tile the recording."""
    recording = ArrayRecording(noise_with_pauses(50.0, [7.3, 16.0, 25.0, 33.0, 41.0]),
                               16000, 16000, None, "x")
    settings = WindowSettings(window=10.0, overlap=1.0, search=4.0, min_tail=2.0)
    plain, on_grid = list(windows(recording, settings)), list(windows(recording, settings, 640))
    assert [(w.keep_start, w.keep_end) for w, _ in plain] == \
        [(w.keep_start, w.keep_end) for w, _ in on_grid]
    assert any(w.start % 640 for w, _ in plain)  # the cuts do not fall on the grid by chance
    for window, wave in on_grid:
        assert window.start == max(window.keep_start - 16000, 0) // 640 * 640  # context
        assert torch.equal(wave, recording.wave[window.start: window.end])


def test_the_shortest_window_still_advances_and_shorter_ones_are_refused():
    with pytest.raises(ValueError, match=r"window: 2e-05 s is shorter than 1.0 s"):
        WindowSettings(window=0.00002, search=0.0)
    recording = ArrayRecording(noise_with_pauses(5.0, [], rate=8000), 8000, 8000, None, "x")
    cut = list(windows(recording, WindowSettings(window=1.0, overlap=0.0, search=0.999,
                                                 min_tail=0.0)))
    keeps = [(w.keep_start, w.keep_end) for w, _ in cut]
    assert keeps[0][0] == 0 and keeps[-1][1] == 8000 * 5 and len(cut) >= 5
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(keeps))


def test_short_recording_is_one_window():
    recording = ArrayRecording(torch.zeros(16000 * 21), 16000, 16000, None, "x")
    (window, _), = windows(recording, WindowSettings(window=20.0, min_tail=2.0))
    assert (window.start, window.end, window.last) == (0, 16000 * 21, True)


def test_quietest_point_finds_the_pause():
    wave = noise_with_pauses(4.0, [2.5])
    assert abs(quietest_point(wave, 16000) / 16000 - 2.5) < 0.06
