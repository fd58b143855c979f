import torch
import torch.nn.functional as F

from asrkit.models.ctc import CTC


def test_loss_matches_torch_ctc_loss():
    torch.manual_seed(0)
    ctc = CTC(encoder_dim=8, vocab_size=7, blank_id=0)
    enc = torch.randn(3, 12, 8)
    enc_lens = torch.tensor([12, 9, 6])
    targets = torch.tensor([[3, 4, 5, 6], [3, 3, -1, -1], [5, -1, -1, -1]])
    target_lens = torch.tensor([4, 2, 1])
    loss = ctc(enc, enc_lens, targets, target_lens)
    log_probs = F.log_softmax(ctc.linear(enc), -1)
    expected = sum(
        F.ctc_loss(log_probs[b, : enc_lens[b]], targets[b, : target_lens[b]],
                   enc_lens[b: b + 1], target_lens[b: b + 1], reduction="sum")
        for b in range(3)
    ) / 3
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(ctc.log_probs(enc).exp().sum(-1), torch.ones(3, 12))


def test_custom_blank_id():
    torch.manual_seed(0)
    ctc = CTC(encoder_dim=4, vocab_size=5, blank_id=4)
    enc, targets = torch.randn(1, 6, 4), torch.tensor([[0, 1]])
    loss = ctc(enc, torch.tensor([6]), targets, torch.tensor([2]))
    log_probs = F.log_softmax(ctc.linear(enc), -1).transpose(0, 1)
    expected = F.ctc_loss(log_probs, targets, torch.tensor([6]), torch.tensor([2]), blank=4,
                          reduction="sum")
    torch.testing.assert_close(loss, expected)
