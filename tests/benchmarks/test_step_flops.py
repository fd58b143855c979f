"""The step FLOP count behind MFU: a grouped convolution's backward costs what its forward
does per gradient (torch's own counter takes a depthwise convolution's weight gradient for a
full convolution's)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.step_flops import count_step_flops


@pytest.mark.parametrize("groups", [1, 4, 64])
def test_grouped_convolution_step_counts_three_forwards(groups):
    batch, channels, frames, kernel = 3, 64, 50, 15
    conv = torch.nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=groups,
                           bias=False)
    x = torch.randn(batch, channels, frames, requires_grad=True)
    forward = 2 * batch * frames * channels * (channels // groups) * kernel  # multiply-adds x2
    assert count_step_flops(lambda: conv(x).sum().backward()) == 3 * forward  # fwd, dx, dw


def test_ungrouped_layers_count_as_torch_counts_them():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, stride=2), torch.nn.Flatten(),
                                torch.nn.LazyLinear(10))
    x = torch.randn(2, 1, 20, 20)
    model(x)  # materialise the lazy layer

    def step():
        model(x).sum().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    assert count_step_flops(step) == counter.get_total_flops() > 0
