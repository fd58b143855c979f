"""Fbank features computed as audio arrives (streaming), equal to the offline features.

Kaldi's fbank with ``snip_edges`` (asrkit.data.features) frames the signal at multiples of
the frame shift, and every frame is computed from its own window alone (DC offset,
pre-emphasis, window, FFT, mel banks). So the features of a growing recording are those of
a running buffer: each call computes the frames whose window is complete and keeps the
samples the next frame still needs (one window minus one shift at most).

    stream = StreamingFbank(FbankExtractor(), cmvn)
    for samples in microphone:                 # float waveform pieces of any length
        frames = stream.accept(samples)        # (n, bins), n >= 0: the new frames only
"""

from __future__ import annotations

import torch

from asrkit.data.cmvn import GlobalCMVN
from asrkit.data.features import FbankExtractor


class StreamingFbank:
    def __init__(self, extractor: FbankExtractor, cmvn: GlobalCMVN | None = None) -> None:
        self.extractor, self.cmvn = extractor, cmvn
        self.buffer = torch.zeros(0)

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Append (samples,) float audio in [-1, 1]; -> the (n, bins) frames it completes."""
        self.buffer = torch.cat([self.buffer, samples.reshape(-1).float()])
        count = self.extractor.num_frames(self.buffer.numel())
        if count == 0:
            return torch.zeros(0, self.extractor.num_mel_bins)
        shift = self.extractor.shift_samples
        used = (count - 1) * shift + self.extractor.window_samples
        feats = self.extractor(self.buffer[:used])  # (count, bins)
        self.buffer = self.buffer[count * shift:]
        return self.cmvn(feats) if self.cmvn is not None else feats
