"""Shared helpers for the model tests: padded batches with garbage (not zeros) in the
padding, the padding-invariance check, and norms moved off their identity init."""

from __future__ import annotations

import pytest
import torch


def _padded_batch(lengths: list[int], dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, max(lengths), dim) features whose padding is large random noise."""
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), dim, generator=gen)
    noise = 100.0 * torch.randn(feats.shape, generator=gen)
    steps = torch.arange(max(lengths))
    pad = steps.unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)
    feats = torch.where(pad.unsqueeze(-1), noise, feats)
    return feats, torch.tensor(lengths)


def _assert_padding_invariant(run, feats, lens, out_lens_fn=None, atol=1e-5):
    """``run(x, lens) -> (y, y_lens)``: each utterance's valid output in the padded batch
    equals its output when run alone, unpadded."""
    with torch.no_grad():
        batch_out, batch_lens = run(feats, lens)
        for b in range(feats.size(0)):
            alone, alone_lens = run(feats[b: b + 1, : lens[b]], lens[b: b + 1])
            n = int(alone_lens[0])
            assert int(batch_lens[b]) == n
            assert alone.shape[1] == n, "run alone, the output has no padding"
            torch.testing.assert_close(batch_out[b, :n], alone[0, :n], atol=atol, rtol=1e-5)


def _randomize_norms(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """LayerNorm/BatchNorm affine parameters and BatchNorm running statistics away from their
    identity init (weight 1, bias 0, mean 0, var 1), so that a missing, extra or swapped norm
    changes the numbers. Returns ``module``."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, (torch.nn.LayerNorm, torch.nn.BatchNorm1d)):
                norm.weight.copy_(0.5 + torch.rand(norm.weight.shape, generator=gen))
                norm.bias.copy_(0.3 * torch.randn(norm.bias.shape, generator=gen))
            if isinstance(norm, torch.nn.BatchNorm1d):
                norm.running_mean.copy_(torch.randn(norm.running_mean.shape, generator=gen))
                norm.running_var.copy_(0.5 + 1.5 * torch.rand(norm.running_var.shape,
                                                              generator=gen))
    return module


def _assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5,
                         scale: float | None = None) -> None:
    """Equal within ``tol`` relative to ``scale`` (default: the largest magnitude of
    ``expected``, at least 1): the check for gradients, whose sums an optimised kernel
    reorders. A gradient that is zero in exact arithmetic (a bias before a training-mode
    BatchNorm) is rounding noise of the size of the others: pass their scale."""
    scale = max(1.0, expected.abs().max().item()) if scale is None else scale
    torch.testing.assert_close(actual, expected, atol=tol * scale, rtol=tol)


@pytest.fixture
def assert_close_scaled():
    return _assert_close_scaled


@pytest.fixture
def randomize_norms():
    return _randomize_norms


@pytest.fixture
def padded_batch():
    return _padded_batch


@pytest.fixture
def assert_padding_invariant():
    return _assert_padding_invariant
