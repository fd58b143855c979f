import math

import pytest
import torch

from asrkit.models.asr_model import ASRModel
from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.mwer import mwer_loss, pad_nbest

VOCAB = 9


def test_mwer_loss_equals_a_hand_computation():
    # utterance 1: four hypotheses; utterance 2: two (the others are padding)
    log_probs = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -1.5, 0.0, 0.0]])
    errors = torch.tensor([[0.0, 1.0, 2.0, 3.0], [2.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    z1 = sum(math.exp(-k) for k in (1, 2, 3, 4))
    mean1 = (0 + 1 + 2 + 3) / 4
    utt1 = sum(math.exp(-k) / z1 * (w - mean1) for k, w in ((1, 0), (2, 1), (3, 2), (4, 3)))
    z2 = math.exp(-0.5) + math.exp(-1.5)
    utt2 = math.exp(-0.5) / z2 * (2 - 1) + math.exp(-1.5) / z2 * (0 - 1)
    assert float(mwer_loss(log_probs, errors, mask)) == pytest.approx((utt1 + utt2) / 2)
    # the gradient pushes probability towards the hypotheses with fewer errors than average
    log_probs.requires_grad_(True)
    mwer_loss(log_probs, errors, mask).backward()
    assert log_probs.grad[0, 0] < 0 < log_probs.grad[0, 3]
    assert torch.all(log_probs.grad[1, 2:] == 0)


def test_one_hypothesis_or_equal_errors_give_zero():
    assert float(mwer_loss(torch.tensor([[-3.0]]), torch.tensor([[2.0]]))) == 0.0
    assert float(mwer_loss(torch.randn(2, 4), torch.full((2, 4), 1.0))) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no hypothesis"):
        mwer_loss(torch.randn(1, 2), torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.bool))


def test_pad_nbest():
    flat, errors, mask = pad_nbest([[[3, 4], [3]], [[5]]], [[0, 1], [2]])
    assert flat == [[3, 4], [3], [5], []]
    assert errors.tolist() == [[0.0, 1.0], [2.0, 0.0]]
    assert mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="utterance 0 has 2 hypotheses but 1"):
        pad_nbest([[[3], [4]]], [[1]])


def test_model_mwer_objective():
    torch.manual_seed(0)
    encoder = TransformerEncoder(input_dim=10, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    model = ASRModel(encoder, decoder, VOCAB).eval()
    feats, feat_lens = torch.randn(2, 30, 10), torch.tensor([30, 20])
    tokens, token_lens = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    nbest = [[[3, 4, 5], [3, 4], [3, 8, 5], [4, 5]], [[6, 7], [6]]]
    word_errors = [[0, 1, 1, 2], [0, 1]]
    out = model.forward_mwer(feats, feat_lens, tokens, token_lens, nbest, word_errors)
    # by hand: attention scores of each utterance's hypotheses, then the pure loss
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        scores = torch.full((2, 4), 0.0)
        for b, hyps in enumerate(nbest):
            scores[b, : len(hyps)] = model.score_hypotheses(enc[b: b + 1], enc_lens[b: b + 1],
                                                            hyps)
        errors = torch.tensor([[0.0, 1, 1, 2], [0, 1, 0, 0]])
        mask = torch.tensor([[True] * 4, [True, True, False, False]])
        expected = mwer_loss(scores, errors, mask)
        ce = model(feats, feat_lens, tokens, token_lens)["loss_att"]
    torch.testing.assert_close(out["loss_mwer"], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["loss_att"], ce)
    torch.testing.assert_close(out["loss"], out["loss_mwer"] + 0.01 * out["loss_att"])
    assert set(out) == {"loss", "loss_mwer", "loss_att", "acc", "mwer_expected_errors"}
    via_forward = model(feats, feat_lens, tokens, token_lens, nbest=nbest,
                        word_errors=word_errors)  # the path DDP synchronises
    torch.testing.assert_close(via_forward["loss"], out["loss"])
    out["loss"].backward()
    assert model.decoder.output_layer.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="N-best lists for a batch of 2"):
        model.forward_mwer(feats, feat_lens, tokens, token_lens, nbest[:1], word_errors[:1])


def test_mwer_ctc_term_keeps_the_ctc_branch_trained():
    torch.manual_seed(0)
    encoder = TransformerEncoder(input_dim=10, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    feats, feat_lens = torch.randn(2, 30, 10), torch.tensor([30, 20])
    tokens, token_lens = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    nbest, word_errors = [[[3, 4, 5], [3, 4]], [[6, 7], [6]]], [[0, 1], [0, 1]]
    plain = ASRModel(encoder, decoder, VOCAB).eval()
    out = plain.forward_mwer(feats, feat_lens, tokens, token_lens, nbest, word_errors)
    out["loss"].backward()
    assert plain.ctc.linear.weight.grad is None  # no CTC term: the CTC head is not trained
    model = ASRModel(encoder, decoder, VOCAB, mwer_ctc_weight=0.5).eval()
    model.load_state_dict(plain.state_dict())
    model.zero_grad()
    out = model.forward_mwer(feats, feat_lens, tokens, token_lens, nbest, word_errors)
    ctc = model(feats, feat_lens, tokens, token_lens)["loss_ctc"]
    torch.testing.assert_close(out["loss_ctc"], ctc)
    torch.testing.assert_close(out["loss"], out["loss_mwer"] + 0.01 * out["loss_att"]
                               + 0.5 * ctc)
    out["loss"].backward()
    assert model.ctc.linear.weight.grad.abs().sum() > 0
