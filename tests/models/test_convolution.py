import pytest
import torch

from asrkit.models.convolution import ConvolutionModule
from asrkit.models.mask import padding_mask


@pytest.mark.parametrize("norm", ["batch_norm", "layer_norm"])
def test_padded_frames_do_not_leak(norm, padded_batch, assert_padding_invariant):
    torch.manual_seed(0)
    conv = ConvolutionModule(8, kernel_size=7, norm=norm).eval()
    with torch.no_grad():
        if norm == "batch_norm":  # non-trivial running statistics
            conv.norm.running_mean.normal_()
            conv.norm.running_var.uniform_(0.5, 2.0)
    feats, lens = padded_batch([20, 9, 5], 8)

    def run(x, lengths):
        return conv(x, padding_mask(lengths, x.size(1))), lengths

    assert_padding_invariant(run, feats, lens)


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError, match="kernel_size"):
        ConvolutionModule(8, kernel_size=4)
