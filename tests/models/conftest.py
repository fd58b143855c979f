"""Shared helpers for the model tests: padded batches with garbage (not zeros) in the
padding, and the padding-invariance check."""

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


@pytest.fixture
def padded_batch():
    return _padded_batch


@pytest.fixture
def assert_padding_invariant():
    return _assert_padding_invariant
