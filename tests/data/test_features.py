import math

import pytest
import torch
import torchaudio.functional as AF
from torchaudio.compliance import kaldi

from asrkit.data.augment import SpecAugment, speed_perturb, speed_perturbed_length
from asrkit.data.cmvn import CMVNAccumulator, GlobalCMVN
from asrkit.data.features import FbankExtractor


def tone(seconds=1.0, rate=16000, freq=440.0):
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * math.pi * freq * t)


def test_fbank_shape_and_kaldi_equality():
    ex = FbankExtractor(num_mel_bins=40)
    wave = tone(1.234)
    feats = ex(wave)
    assert feats.shape == (ex.num_frames(wave.numel()), 40) == (121, 40)
    assert ex.frames_for_duration(1.234) == 121
    reference = kaldi.fbank(wave[None] * 32768, num_mel_bins=40, dither=0.0, energy_floor=0.0)
    torch.testing.assert_close(feats, reference)
    # the 440 Hz tone lights up a low mel bin far above the top ones
    assert feats[:, :10].max() > feats[:, -5:].max() + 5


def test_dither_follows_the_generator():
    ex = FbankExtractor()
    wave = tone(0.5)
    a = ex(wave, dither=1.0, generator=torch.Generator().manual_seed(1))
    b = ex(wave, dither=1.0, generator=torch.Generator().manual_seed(1))
    c = ex(wave, dither=1.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_too_short_audio_is_a_clear_error():
    with pytest.raises(ValueError, match="shorter than one 25.0 ms window"):
        FbankExtractor()(torch.zeros(100))


def test_spec_augment_masks_within_limits_and_reproducible():
    feats = torch.randn(200, 80) + 5.0  # no natural zeros
    original = feats.clone()
    aug = SpecAugment(num_freq_masks=2, freq_mask_width=10, num_time_masks=3, time_mask_width=0.05)
    out = aug(feats, torch.Generator().manual_seed(0))
    masked_cols = (out == 0).all(dim=0).sum().item()
    masked_rows = (out == 0).all(dim=1).sum().item()
    assert 0 < masked_cols <= 2 * 10
    assert 0 < masked_rows <= 3 * 10  # 5 % of 200 frames per mask
    keep = (out != 0)
    assert torch.equal(out[keep], feats[keep])
    assert torch.equal(out, aug(feats, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, aug(feats, torch.Generator().manual_seed(1)))
    assert torch.equal(feats, original), "input untouched"


def masked_frames(aug: SpecAugment, feats: torch.Tensor, seed: int) -> int:
    return (aug(feats, torch.Generator().manual_seed(seed)) == 0).all(dim=1).sum().item()


def test_time_mask_width_as_frames():
    aug = SpecAugment(num_freq_masks=0, num_time_masks=1, time_mask_width=20)
    for frames in (300, 60):  # a frame count does not scale with the utterance
        feats = torch.randn(frames, 8) + 5.0
        widths = [masked_frames(aug, feats, seed) for seed in range(200)]
        assert max(widths) == 20 and len(set(widths)) == 21  # U[0, 20]


def test_time_mask_width_as_fraction_of_the_length():
    aug = SpecAugment(num_freq_masks=0, num_time_masks=1, time_mask_width=0.1)
    for frames in (300, 150):
        feats = torch.randn(frames, 8) + 5.0
        widths = [masked_frames(aug, feats, seed) for seed in range(200)]
        assert max(widths) == frames // 10


def test_adaptive_number_of_time_masks():
    aug = SpecAugment(num_time_masks=5, time_masks_per_frame=0.04)
    assert [aug.time_mask_count(t) for t in (24, 25, 100, 149, 1000)] == [0, 1, 4, 5, 5]
    assert SpecAugment(num_time_masks=5).time_mask_count(1000) == 5  # 0: a fixed count
    aug = SpecAugment(num_freq_masks=0, num_time_masks=10, time_mask_width=5, time_masks_per_frame=0.04)
    short = torch.randn(24, 8) + 5.0  # 24 x 0.04 < 1: no time mask at all
    assert all(torch.equal(aug(short, torch.Generator().manual_seed(s)), short) for s in range(20))
    long = torch.randn(100, 8) + 5.0  # 4 masks of up to 5 frames
    widths = [masked_frames(aug, long, seed) for seed in range(200)]
    assert 0 < max(widths) <= 4 * 5 and max(widths) > 10
    with pytest.raises(ValueError, match="specaug.time_masks_per_frame must be >= 0"):
        SpecAugment(time_masks_per_frame=-0.1)


def test_time_warp_keeps_shape_and_endpoints():
    feats = torch.linspace(0, 1, 100)[:, None].repeat(1, 4)
    aug = SpecAugment(num_freq_masks=0, num_time_masks=0, time_warp=5)
    out = aug(feats, torch.Generator().manual_seed(3))
    assert out.shape == feats.shape
    assert torch.all(out[1:, 0] >= out[:-1, 0] - 1e-6), "a monotone ramp stays monotone"
    assert not torch.allclose(out, feats)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_length(factor):
    wave = tone(1.0)
    gen = torch.Generator().manual_seed(0)
    out = speed_perturb(wave, 16000, [factor], gen)
    assert abs(out.numel() - 16000 / factor) <= 2
    assert speed_perturb(wave, 16000, [1.0], gen) is wave


@pytest.mark.parametrize("factor", [0.9, 0.95, 1.0, 1.1, 1.2])
def test_speed_perturbed_length_is_torchaudios(factor):
    for samples in (400, 1001, 16000, 17599, 17600, 48013):
        expected = AF.speed(torch.zeros(samples), 16000, factor)[0].numel()
        assert speed_perturbed_length(samples, 16000, factor) == expected


def test_cmvn_equals_direct_statistics(tmp_path):
    utts = [torch.randn(50, 8) * 3 + 2, torch.randn(70, 8) * 0.5 - 1]
    acc = CMVNAccumulator(8)
    for u in utts:
        acc.add(u)
    cmvn = acc.result()
    allf = torch.cat(utts).double()
    torch.testing.assert_close(cmvn.mean.double(), allf.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(cmvn.istd.double(), 1 / allf.std(0, unbiased=False), atol=1e-5, rtol=1e-5)
    normed = torch.cat([cmvn(u) for u in utts])
    assert normed.mean(0).abs().max() < 1e-4 and (normed.std(0, unbiased=False) - 1).abs().max() < 1e-4
    cmvn.save(tmp_path / "cmvn.json")
    back = GlobalCMVN.load(tmp_path / "cmvn.json")
    assert torch.equal(back.mean, cmvn.mean) and back.frames == 120 and back.utterances == 2
    with pytest.raises(ValueError, match="8 bins, features have 3"):
        cmvn(torch.zeros(2, 3))
    with pytest.raises(FileNotFoundError, match="missing.json: CMVN stats not found"):
        GlobalCMVN.load(tmp_path / "missing.json")


def test_frames_shorter_than_a_sample_and_mismatched_cmvn_are_named(tmp_path):
    import json

    with pytest.raises(ValueError, match=r"^features.frame_shift: 0.05 ms is less than one "
                                         r"sample at 16000 Hz$"):
        FbankExtractor(frame_shift=0.05)
    with pytest.raises(ValueError, match=r"^features.frame_length: 0.01 ms"):
        FbankExtractor(frame_length=0.01)
    path = tmp_path / "cmvn.json"
    path.write_text(json.dumps({"mean": [0.0] * 40, "istd": [1.0] * 80}))
    with pytest.raises(ValueError, match=r"cmvn.json: not a CMVN stats file \(mean and istd "
                                         r"must be lists of one length, got \(40,\) and \(80,\)\)"):
        GlobalCMVN.load(path)
