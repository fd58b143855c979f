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
    missing = tmp_path / "gone.wav"  # soundfile says "System error." for it
    for read in (lambda: Recording.open(missing, 16000), lambda: load_audio(missing)):
        with pytest.raises(AudioError) as error:
            read()
        assert str(error.value) == f"{missing}: audio file not found"


@pytest.mark.parametrize("rate, piece", [(16000, 1000), (16000, 1600), (22050, 2205)])
def test_reading_forward_an_mp3_equals_reading_it_whole(tmp_path, rate, piece, capfd):
    """libsndfile's MP3 seek is not exact to the sample, nor are its reads of some sizes:
    pieces read with a seek each differed from the whole file by up to 0.02 (and libmpg123
    printed an error per bad seek); a stream reads forward, in whole blocks."""
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile writes no MP3")  # the locked soundfile wheel does
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 5) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size))
    path = tmp_path / "x.mp3"
    sf.write(str(path), wave.astype("float32"), 16000, format="MP3")
    whole = torch.from_numpy(sf.read(str(path), dtype="float32")[0])
    if rate != 16000:
        whole = AF.resample(whole, 16000, rate)
    recording = Recording.open(path, rate)
    with recording.reading_forward():
        pieces = torch.cat([recording.read(start, start + piece)
                            for start in range(0, recording.num_samples, piece)])
    assert pieces.shape == whole.shape
    assert (pieces - whole).abs().max() < 1e-6
    assert "libmpg123" not in capfd.readouterr().err
    with recording.reading_forward(), pytest.raises(ValueError, match="before"):
        recording.read(20000, 21000)
        recording.read(0, 500)
