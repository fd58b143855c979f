import pytest
import torch

from asrkit.models.label_smoothing import LabelSmoothingLoss


def naive_loss(logits, targets, mask, smoothing, normalize_length):
    vocab = logits.size(-1)
    true_dist = torch.full_like(logits, smoothing / (vocab - 1))
    true_dist.scatter_(-1, targets.clamp(min=0).unsqueeze(-1), 1 - smoothing)
    kl = torch.nn.functional.kl_div(logits.log_softmax(-1), true_dist, reduction="none").sum(-1)
    total = (kl * mask).sum()
    return total / (mask.sum() if normalize_length else logits.size(0))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("normalize_length", [False, True])
def test_matches_kl_to_smoothed_targets(smoothing, normalize_length):
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6)
    targets = torch.tensor([[1, 2, 3, 4], [5, 0, -1, -1]])
    mask = targets >= 0
    loss = LabelSmoothingLoss(6, smoothing, normalize_length)(logits, targets, mask)
    torch.testing.assert_close(loss, naive_loss(logits, targets, mask, smoothing, normalize_length))


def test_without_smoothing_equals_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    mask = torch.ones(3, 5, dtype=torch.bool)
    loss = LabelSmoothingLoss(7, 0.0, normalize_length=True)(logits, targets, mask)
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets)
    torch.testing.assert_close(loss, expected)
