import pytest
import torch

from asrkit.models.asr_model import ASRModel
from asrkit.models.decoder_io import teacher_forcing_io
from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.scheduled_sampling import mix_decoder_inputs, sampling_probability

VOCAB = 9


def tiny_model(**kwargs) -> ASRModel:
    torch.manual_seed(0)
    encoder = TransformerEncoder(input_dim=10, d_model=16, num_heads=2, ffn_dim=32,
                                 num_layers=1, dropout=0.0, positional_dropout=0.0)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1,
                                 dropout=0.0, positional_dropout=0.0)
    return ASRModel(encoder, decoder, VOCAB, **kwargs)


def batch():
    torch.manual_seed(1)
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, -1, -1]])
    return torch.randn(2, 30, 10), torch.tensor([30, 22]), tokens, torch.tensor([4, 2])


def test_linear_ramp():
    probs = [float(sampling_probability(torch.tensor(s), 0.4, 100)) for s in (0, 50, 100, 500)]
    assert probs == pytest.approx([0.0, 0.2, 0.4, 0.4])
    assert float(sampling_probability(torch.tensor(0), 0.4, 0)) == pytest.approx(0.4)


def test_mixing_replaces_positions_after_sos_with_the_previous_prediction():
    dec_in = torch.tensor([[2, 3, 4, 5], [2, 6, 2, 2]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    logits = torch.nn.functional.one_hot(torch.tensor([[7, 8, 1, 1], [3, 4, 5, 5]]), VOCAB)
    torch.testing.assert_close(mix_decoder_inputs(dec_in, logits.float(), mask, 0.0), dec_in)
    expected = torch.tensor([[2, 7, 8, 1], [2, 3, 2, 2]])  # sos kept, padding kept
    torch.testing.assert_close(mix_decoder_inputs(dec_in, logits.float(), mask, 1.0), expected)


def test_p_zero_equals_teacher_forcing():
    reference = tiny_model().train()
    model = tiny_model(scheduled_sampling_prob=0.4, scheduled_sampling_ramp_steps=1000).train()
    model.set_step(0)  # p = 0 at the start of the ramp
    a = reference(*batch())
    b = model(*batch())
    assert float(b["sampling_prob"]) == 0.0
    for key in ("loss", "loss_att", "loss_ctc", "acc"):
        torch.testing.assert_close(a[key], b[key])
    assert set(model.state_dict()) == set(reference.state_dict()), "the step is not saved"


def test_p_one_trains_on_the_models_own_predictions():
    model = tiny_model(scheduled_sampling_prob=1.0, scheduled_sampling_ramp_steps=10).train()
    model.set_step(25)
    feats, feat_lens, tokens, token_lens = batch()
    out = model(feats, feat_lens, tokens, token_lens)
    assert float(out["sampling_prob"]) == 1.0
    # by hand: first pass, shift its argmax into the inputs, second pass
    enc, enc_lens = model.encode(feats, feat_lens)
    dec_in, dec_out, mask = teacher_forcing_io(tokens, token_lens, model.sos_id, model.eos_id)
    enc_mask = torch.arange(enc.size(1)) < enc_lens.unsqueeze(1)
    first = model.decoder(dec_in, mask, enc, enc_mask).argmax(-1)
    mixed = torch.where(mask, torch.cat([dec_in[:, :1], first[:, :-1]], dim=1), dec_in)
    expected = model.att_loss(model.decoder(mixed, mask, enc, enc_mask), dec_out, mask)
    torch.testing.assert_close(out["loss_att"], expected)
    out["loss"].backward()
    assert model.decoder.embed.weight.grad is not None


def test_eval_mode_is_teacher_forced_and_set_step_is_safe_without_sampling():
    model = tiny_model(scheduled_sampling_prob=1.0).eval()
    reference = tiny_model().eval()
    with torch.no_grad():
        out = model(*batch())
        torch.testing.assert_close(out["loss"], reference(*batch())["loss"])
    assert "sampling_prob" not in out
    reference.set_step(10)  # no scheduled sampling: a no-op
    with pytest.raises(ValueError, match="scheduled_sampling_prob"):
        tiny_model(scheduled_sampling_prob=1.5)
