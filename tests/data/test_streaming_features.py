"""Streaming fbank: the frames of audio fed in pieces of any size equal the offline
features of the whole recording, frame for frame."""

from __future__ import annotations

import pytest
import torch

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor
from asrkit.data.streaming_features import StreamingFbank


@pytest.mark.parametrize("piece", [1, 37, 160, 400, 1000, 16000])
def test_streaming_features_equal_offline(piece):
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(16000 + 123)
    extractor = FbankExtractor(num_mel_bins=40)
    cmvn = GlobalCMVN(torch.randn(40), torch.rand(40) + 0.5)
    offline = cmvn(extractor(wave))
    stream = StreamingFbank(extractor, cmvn)
    frames = [stream.accept(wave[i:i + piece]) for i in range(0, wave.numel(), piece)]
    online = torch.cat(frames)
    assert online.shape == offline.shape == (99, 40)
    torch.testing.assert_close(online, offline, rtol=1e-5, atol=1e-5)  # equal up to BLAS order
    assert stream.buffer.numel() < extractor.window_samples
