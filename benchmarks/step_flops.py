"""The model FLOPs of one training step, for MFU: torch.utils.flop_counter with one formula
corrected. Its convolution backward ignores ``groups`` for the weight gradient and counts a
depthwise convolution's as if every output channel read every input channel (d times too
many: 8-25 % of a Conformer step); here both gradients of a grouped convolution cost what
its forward costs (each multiplies the same pairs once).

    flops = count_step_flops(step)   # runs step() once under the counter

Count after the timed steps: flex_attention cannot run under the counter (no FLOP rule for
its higher-order op), and asrkit's relative-position attention then falls back to SDPA for
the rest of the process (asrkit.models.rel_attention).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding,
                        _dilation, transposed, _output_padding, _groups, output_mask,
                        out_shape=None) -> int:
    """aten.convolution_backward: the forward's FLOPs once per gradient asked for (input,
    weight). ``w_shape`` is (out, in / groups, kernel...), so the forward count is right
    for any ``groups``, and each gradient multiplies the same pairs the forward did."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_step_flops(step: Callable[[], object]) -> int:
    with FlopCounterMode(display=False,
                         custom_mapping={torch.ops.aten.convolution_backward:
                                         conv_backward_flops}) as counter:
        step()
    return counter.get_total_flops()
