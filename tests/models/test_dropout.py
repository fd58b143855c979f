"""The cheap CPU dropout (asrkit.models.dropout): its statistics (rate, unbiasedness,
independence), its reproducibility, and that the folded scales give x * mask / (1 - p)."""

import math

import pytest
import torch

from asrkit.models.dropout import (
    Dropout,
    dropout_unscaled,
    keep_mask,
    quantised_drop_probability,
)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_drop_rate_and_scale(p):
    torch.manual_seed(0)
    n = 400_000
    keep, scale = keep_mask((n,), p)
    assert keep.dtype == torch.bool and keep.shape == (n,)
    q = quantised_drop_probability(p)
    assert abs(q - p) <= 2 ** -17 and scale == pytest.approx(1.0 / (1.0 - q), rel=1e-12)
    dropped = 1.0 - keep.double().mean().item()
    sigma = math.sqrt(q * (1 - q) / n)
    assert abs(dropped - q) < 5 * sigma


def test_masks_are_unbiased_and_independent_between_neighbours():
    """E[dropout(x)] = x; the four 16-bit draws that share a 64-bit word are independent."""
    torch.manual_seed(1)
    p, n = 0.3, 400_000
    x = torch.full((n,), 2.0)
    y = Dropout(p).train()(x)
    kept_value = torch.tensor(2.0 / (1 - quantised_drop_probability(p)))  # in fp32
    assert set(torch.unique(y).tolist()) <= {0.0, kept_value.item()}
    assert y.double().mean().item() == pytest.approx(2.0, abs=5 * 2 * math.sqrt(p / (1 - p) / n))
    keep = (y > 0).double().view(-1, 4)
    q = 1 - quantised_drop_probability(p)
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:  # both kept: q^2 if independent
        assert (keep[:, a] * keep[:, b]).mean().item() == pytest.approx(q * q, abs=0.005)
    consecutive_words = keep.view(-1, 8)  # last slot of one word and first of the next
    assert (consecutive_words[:, 3] * consecutive_words[:, 4]).mean().item() == pytest.approx(
        q * q, abs=0.006)


def test_reproducible_from_the_seed_and_different_between_draws():
    torch.manual_seed(3)
    a, _ = keep_mask((5, 7), 0.5)
    b, _ = keep_mask((5, 7), 0.5)
    torch.manual_seed(3)
    c, _ = keep_mask((5, 7), 0.5)
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_eval_and_zero_rate_are_the_identity():
    x = torch.randn(3, 4)
    assert Dropout(0.5).eval()(x) is x
    y, scale = dropout_unscaled(x, 0.0, True)
    assert y is x and scale == 1.0


def test_forward_residual_and_gradient_use_mask_over_one_minus_p():
    x = torch.randn(6, 33, requires_grad=True)
    base = torch.randn(6, 33)
    drop = Dropout(0.2).train()
    torch.manual_seed(5)
    keep, scale = keep_mask(x.shape, 0.2)
    torch.manual_seed(5)
    y = drop(x)
    torch.testing.assert_close(y, x * keep / (1 - quantised_drop_probability(0.2)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, keep.float() * scale)
    torch.manual_seed(5)
    torch.testing.assert_close(drop.residual(base, x, 0.5), base + 0.5 * x * keep * scale)


def test_bf16_input_keeps_its_dtype():
    torch.manual_seed(0)
    y = Dropout(0.1).train()(torch.ones(4, 8, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def test_rejects_a_rate_of_one():
    with pytest.raises(ValueError, match="dropout probability"):
        keep_mask((3,), 1.0)


def test_a_rate_just_below_one_keeps_one_level():
    """p within 2^-17 of 1 rounds to 1 on the 2^-16 grid: the mask then keeps 1 in 65536
    (p' = 1 - 2^-16, scale 65536) instead of dividing by zero, as F.dropout accepts it."""
    torch.manual_seed(0)
    keep, scale = keep_mask((1 << 20,), 0.999995)
    assert quantised_drop_probability(0.999995) == 1 - 2 ** -16 and scale == 65536.0
    assert 0 < int(keep.sum()) < 64  # about 16 of 2^20
