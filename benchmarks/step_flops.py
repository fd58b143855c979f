"""Model-FLOPs utilisation's two halves: the dense bf16 peak of a GPU by its name, and the
model FLOPs of one training step: torch.utils.flop_counter with one formula corrected. Its
convolution backward ignores ``groups`` for the weight gradient and counts a depthwise
convolution's as if every output channel read every input channel (d times too many: 8-25 %
of a Conformer step); here both gradients of a grouped convolution cost what its forward
costs (each multiplies the same pairs once).

    flops = count_step_flops(step)   # runs step() once under the counter
    peak = peak_tflops_for(torch.cuda.get_device_name())   # 989.0 on an H200

Count after the timed steps: flex_attention cannot run under the counter (no FLOP rule for
its higher-order op), and asrkit's relative-position attention then falls back to SDPA for
the rest of the process (asrkit.models.rel_attention). torch is imported where it is used,
so that the peak table is light to import.
"""

from __future__ import annotations

from collections.abc import Callable

# dense bf16 peak, TFLOP/s (data sheets; SXM parts); the first name contained in the
# device name wins, so longer names come first
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0),
                    ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0))


def peak_tflops_for(device_name: str, override: float | None = None) -> float | None:
    """``override``, else the table's peak for the device name (None: not in the table)."""
    if override:
        return override
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name in device_name), None)


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding,
                        _dilation, transposed, _output_padding, _groups, output_mask,
                        out_shape=None) -> int:
    """aten.convolution_backward: the forward's FLOPs once per gradient asked for (input,
    weight). ``w_shape`` is (out, in / groups, kernel...), so the forward count is right
    for any ``groups``, and each gradient multiplies the same pairs the forward did."""
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_step_flops(step: Callable[[], object]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False,
                         custom_mapping={torch.ops.aten.convolution_backward:
                                         conv_backward_flops}) as counter:
        step()
    return counter.get_total_flops()
