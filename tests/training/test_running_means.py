"""Running means kept on the device (asrkit.training.running_means): the means of plain
Python sums over the micro-batches whose loss was finite."""

from __future__ import annotations

import pytest
import torch

from asrkit.training.running_means import RunningMeans


def batch(frames: list[int]) -> dict:
    return {"feat_lens": torch.tensor(frames), "ids": [f"u{i}" for i in range(len(frames))]}


def test_means_are_those_of_the_finite_micro_batches():
    means = RunningMeans()
    outs = [{"loss": torch.tensor(3.0), "acc": torch.tensor(0.25), "nbest": [1, 2]},
            {"loss": torch.tensor(float("nan")), "acc": torch.tensor(0.5)},
            {"loss": torch.tensor(1.5), "acc": torch.tensor(0.75), "loss_moe": torch.tensor(2.0)},
            {"loss": torch.tensor(2.5), "acc": torch.tensor(1.0)}]
    for out in outs:
        means.add(out, batch([10, 7]), torch.isfinite(out["loss"]))
    assert means.batches == 4 and means.utterances == 8 and means.frames == 68
    got = means.means()
    assert got["loss"] == (3.0 + 1.5 + 2.5) / 3
    assert got["acc"] == pytest.approx((0.25 + 0.75 + 1.0) / 3)
    assert got["loss_moe"] == pytest.approx(2.0 / 3)  # a term some batches lack
    assert "nbest" not in got


def test_nothing_finite_gives_no_means():
    means = RunningMeans()
    means.add({"loss": torch.tensor(float("inf"))}, batch([5]), torch.tensor(False))
    assert means.means() == {} and RunningMeans().means() == {}
