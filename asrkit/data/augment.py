"""Training-time augmentation: speed perturbation (Ko et al. 2015) and SpecAugment
(Park et al. 2019), each driven by an explicit torch.Generator so that an utterance's
augmentation depends only on (seed, epoch, utterance) and a resumed run sees the same data.

Speed perturbation uses torchaudio.functional.speed; `speed_perturbed_length` gives the
length it returns, for the sampler's frame budget and the filters. The masks are drawn here
rather than with torchaudio.functional.mask_along_axis / torchaudio.transforms.TimeMasking
because those read the global RNG, which would make a resumed run see different masks; time
warping (SpecAugment's W) is a piecewise-linear resampling of the time axis.

The number of time masks may grow with the utterance, floor(p_M * T) for T frames, capped
at `num_time_masks` ("adaptive multiplicity", Park et al. 2020, "SpecAugment on Large Scale
Datasets"; Lingvo's `time_masks_per_frame`), as their width may (`time_mask_width` < 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio.functional as AF


def speed_perturb(
    wave: torch.Tensor, sample_rate: int, factors: list[float], generator: torch.Generator
) -> torch.Tensor:
    """Play `wave` (samples,) at a speed drawn uniformly from `factors`."""
    if not factors:
        return wave
    factor = factors[int(torch.randint(len(factors), (1,), generator=generator))]
    if factor == 1.0:
        return wave
    return AF.speed(wave, sample_rate, factor)[0]


def speed_perturbed_length(num_samples: int, sample_rate: int, factor: float) -> int:
    """Samples `speed_perturb` returns for `num_samples` at `factor`.

    torchaudio.functional.speed resamples from int(factor * rate) Hz to rate Hz (both divided
    by their gcd) and rounds the output length up.
    """
    if factor == 1.0:
        return num_samples
    source, target = int(factor * sample_rate), sample_rate
    common = math.gcd(source, target)
    return math.ceil(target // common * num_samples / (source // common))


@dataclass(frozen=True)
class SpecAugment:
    num_freq_masks: int = 2
    freq_mask_width: int = 27
    num_time_masks: int = 10  # the count, or the cap when time_masks_per_frame > 0
    time_mask_width: float = 0.05  # < 1: fraction of the utterance length; >= 1: frames
    time_masks_per_frame: float = 0.0  # > 0: min(num_time_masks, floor(this * frames)) masks
    time_warp: int = 0  # frames; 0 disables

    def __post_init__(self) -> None:
        for name in ("num_freq_masks", "freq_mask_width", "num_time_masks", "time_mask_width",
                     "time_masks_per_frame", "time_warp"):
            if getattr(self, name) < 0:
                raise ValueError(f"specaug.{name} must be >= 0, got {getattr(self, name)}")

    def time_mask_count(self, frames: int) -> int:
        """How many time masks an utterance of `frames` frames gets."""
        if self.time_masks_per_frame > 0:
            return min(self.num_time_masks, math.floor(self.time_masks_per_frame * frames))
        return self.num_time_masks

    def __call__(self, feats: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(frames, bins) -> augmented copy; masked cells are set to 0 (the mean after CMVN)."""
        feats = feats.clone()
        frames, bins = feats.shape
        if self.time_warp > 0:
            feats = _time_warp(feats, self.time_warp, generator)
        _mask_axis(feats, 1, self.num_freq_masks, min(self.freq_mask_width, bins), generator)
        width = self.time_mask_width
        max_time = int(width * frames) if width < 1 else int(width)
        _mask_axis(feats, 0, self.time_mask_count(frames), min(max_time, frames), generator)
        return feats


def _mask_axis(
    feats: torch.Tensor, axis: int, count: int, max_width: int, generator: torch.Generator
) -> None:
    """Zero `count` bands of width U[0, max_width] along `axis`, in place, all at once."""
    if count <= 0 or max_width <= 0:
        return
    size = feats.shape[axis]
    widths = torch.randint(0, max_width + 1, (count,), generator=generator)
    starts = (torch.rand(count, generator=generator) * (size - widths + 1)).long()
    positions = torch.arange(size)
    hit = ((positions[None, :] >= starts[:, None]) & (positions[None, :] < (starts + widths)[:, None]))
    mask = hit.any(dim=0)  # (size,)
    if axis == 0:
        feats[mask, :] = 0.0
    else:
        feats[:, mask] = 0.0


def _time_warp(feats: torch.Tensor, max_warp: int, generator: torch.Generator) -> torch.Tensor:
    """Move a random centre frame by up to ±max_warp frames, stretching both sides linearly."""
    frames = feats.shape[0]
    if frames <= 2 * max_warp + 1:
        return feats
    centre = int(torch.randint(max_warp + 1, frames - max_warp, (1,), generator=generator))
    target = centre + int(torch.randint(-max_warp, max_warp + 1, (1,), generator=generator))
    x = feats.t().unsqueeze(0)  # (1, bins, frames)
    left = F.interpolate(x[..., :centre], size=target, mode="linear", align_corners=False)
    right = F.interpolate(x[..., centre:], size=frames - target, mode="linear", align_corners=False)
    return torch.cat([left, right], dim=-1)[0].t().contiguous()
