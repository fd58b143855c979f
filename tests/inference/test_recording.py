"""Reading recordings in blocks: resampled blocks equal resampling the whole file, channels
are mixed or picked, and bad files are refused naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from asrkit.data.audio import AudioError, load_audio
from asrkit.inference.recording import Recording


@pytest.mark.parametrize("rate", [44100, 22050, 8000, 48000])
def test_resampled_blocks_equal_resampling_the_whole_file(tmp_path, rate):
    rng = np.random.default_rng(rate)
    stereo = (rng.standard_normal((rate * 2 + 37, 2)) * 0.1).astype("float32")
    path = tmp_path / "x.wav"
    sf.write(str(path), stereo, rate, subtype="FLOAT")
    whole = AF.resample(torch.from_numpy(stereo.mean(axis=1)), rate, 16000)  # reference
    recording = Recording.open(path, 16000)
    assert recording.num_samples == whole.numel()
    for start, end in [(0, 999), (12345, 20000), (whole.numel() - 321, whole.numel()),
                       (5, whole.numel())]:
        block = recording.read(start, end)
        assert block.numel() == end - start
        assert (block - whole[start:end]).abs().max() < 1e-6


def test_channels_are_mixed_or_picked(tmp_path):
    left, right = np.full(1600, 0.5, "float32"), np.full(1600, -0.1, "float32")
    path = tmp_path / "two.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert torch.allclose(Recording.open(path, 16000).read(0, 1600), torch.tensor(0.2))
    assert torch.allclose(Recording.open(path, 16000, channel=1).read(0, 1600),
                          torch.tensor(-0.1))
    # training and decoding read channel 0 as before; channel=None mixes
    assert torch.allclose(load_audio(path), torch.tensor(0.5))
    assert torch.allclose(load_audio(path, channel=None), torch.tensor(0.2))
    with pytest.raises(AudioError, match=r"two.wav: has 2 channel\(s\); channel 2 does not"):
        Recording.open(path, 16000, channel=2)


def test_bad_files_name_themselves(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, "float32"), 16000)
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        Recording.open(empty, 16000)
    good = tmp_path / "good.wav"
    sf.write(str(good), np.zeros(16000, "float32"), 16000, subtype="PCM_16")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:20000])
    with pytest.raises(AudioError, match="truncated.wav: truncated: its header declares 16000"):
        Recording.open(truncated, 16000)
    nan = tmp_path / "nan.wav"
    wave = np.zeros(16000, "float32")
    wave[12000] = np.nan
    sf.write(str(nan), wave, 16000, subtype="FLOAT")
    recording = Recording.open(nan, 16000)
    assert recording.read(0, 8000).abs().max() == 0  # the block before the NaN reads fine
    with pytest.raises(AudioError, match=r"nan.wav: 1 non-finite samples"):
        recording.read(8000, 16000)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav: unreadable audio"):
        Recording.open(text, 16000)
