"""TensorBoard output of a training run (rank 0): ``<exp_dir>/tensorboard/``.

Scalars, by optimiser update: ``train/<term>`` for every scalar the model returns (``loss``,
``loss_ctc``, ``loss_att``, ``acc``, and whatever terms a model adds), ``train/lr``,
``train/grad_norm``, ``train/frames_per_s``, ``train/utts_per_s``; ``dev/<term>``,
``dev/wer``, ``dev/cer`` at each validation. Images, once per epoch: attention maps of one dev
utterance (asrkit.training.attention_maps), drawn with the viridis colour map, rows =
queries (tokens or frames), columns = encoder frames, enlarged to be visible.

    tensorboard --logdir exp/          # compare every experiment under exp/
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def heatmap(weights: torch.Tensor, min_size: int = 160, max_size: int = 1024) -> np.ndarray:
    """(rows, cols) values in [0, 1] -> (H, W, 3) uint8 viridis image, each cell an s x s block
    with s chosen so that the shorter side is at least ``min_size`` pixels (if it fits)."""
    from matplotlib import colormaps

    values = weights.detach().float().cpu().numpy()
    peak = float(values.max()) if values.size else 1.0
    rgb = colormaps["viridis"](values / peak if peak > 0 else values)[..., :3]
    rows, cols = values.shape
    scale = max(1, math.ceil(min_size / max(1, min(rows, cols))))
    scale = max(1, min(scale, max_size // max(1, max(rows, cols))))
    rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    return (rgb * 255).round().astype(np.uint8)


class TensorBoardLogger:
    """A SummaryWriter that does nothing when disabled (other ranks, trainer.tensorboard=false)."""

    def __init__(self, log_dir: str | Path, enabled: bool = True) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def images(self, maps: dict[str, torch.Tensor], step: int) -> None:
        if self.writer is None:
            return
        for tag, weights in maps.items():
            self.writer.add_image(tag, heatmap(weights), step, dataformats="HWC")

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
