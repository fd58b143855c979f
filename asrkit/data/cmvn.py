"""Global cepstral mean and variance normalisation over the training set.

Statistics are accumulated once over a manifest (float64 sums of features and their
squares) and saved as JSON: `{"mean": [...], "istd": [...], "frames": N, "utterances": M}`.
They are applied in the loader as `(feats - mean) * istd`, before SpecAugment, so masked
cells (set to 0) sit at the mean. An experiment directory carries a copy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from asrkit.atomic_text import write_text_atomic


@dataclass
class GlobalCMVN:
    mean: torch.Tensor  # (bins,)
    istd: torch.Tensor  # (bins,)
    frames: int = 0
    utterances: int = 0

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.shape[-1] != self.mean.numel():
            raise ValueError(f"CMVN stats have {self.mean.numel()} bins, features have {feats.shape[-1]}")
        return (feats - self.mean) * self.istd

    def save(self, path: str | Path) -> None:
        data = {"mean": self.mean.tolist(), "istd": self.istd.tolist(), "frames": self.frames,
                "utterances": self.utterances}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data) + "\n")  # a failed write keeps the old file

    @classmethod
    def load(cls, path: str | Path) -> GlobalCMVN:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: CMVN stats not found (compute them with `asrkit cmvn`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mean = torch.tensor(data["mean"], dtype=torch.float32)
            istd = torch.tensor(data["istd"], dtype=torch.float32)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a CMVN stats file ({e})") from None
        if mean.dim() != 1 or mean.shape != istd.shape or not mean.numel():
            raise ValueError(f"{path}: not a CMVN stats file (mean and istd must be lists of "
                             f"one length, got {tuple(mean.shape)} and {tuple(istd.shape)})")
        if not (torch.isfinite(mean).all() and torch.isfinite(istd).all() and (istd > 0).all()):
            raise ValueError(f"{path}: not a CMVN stats file (mean must be finite and istd "
                             "finite and > 0)")
        return cls(mean, istd, data.get("frames", 0), data.get("utterances", 0))


class CMVNAccumulator:
    """Running float64 sums; `result()` gives the stats (variance floored at 1e-10)."""

    def __init__(self, bins: int):
        self.total = torch.zeros(bins, dtype=torch.float64)
        self.squares = torch.zeros(bins, dtype=torch.float64)
        self.frames = 0
        self.utterances = 0

    def add(self, feats: torch.Tensor) -> None:
        """Add one utterance's (frames, bins) features."""
        feats = feats.to(torch.float64)
        self.total += feats.sum(dim=0)
        self.squares += (feats * feats).sum(dim=0)
        self.frames += feats.shape[0]
        self.utterances += 1

    def result(self) -> GlobalCMVN:
        if self.frames == 0:
            raise ValueError("no frames to compute CMVN statistics from")
        mean = self.total / self.frames
        variance = (self.squares / self.frames - mean * mean).clamp_min(1e-10)
        return GlobalCMVN(mean.float(), variance.rsqrt().float(), self.frames, self.utterances)
