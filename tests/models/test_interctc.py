import pytest
import torch
import torch.nn.functional as F

from asrkit.models.asr_model import ASRModel
from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.encoders.conformer import ConformerEncoder
from asrkit.models.encoders.contextnet import ContextNetEncoder
from asrkit.models.encoders.transformer import TransformerEncoder
from asrkit.models.intermediate import resolve_layers
from asrkit.models.mask import padding_mask
from asrkit.models.param_count import count_parameters

VOCAB = 11


def tiny_model(encoder_cls=ConformerEncoder, with_decoder=True, **kwargs) -> ASRModel:
    torch.manual_seed(0)
    encoder = encoder_cls(input_dim=10, d_model=16, num_heads=2, ffn_dim=32, num_layers=4)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32,
                                 num_layers=1) if with_decoder else None
    return ASRModel(encoder, decoder, VOCAB, **kwargs)


def batch():
    torch.manual_seed(1)
    feats = torch.randn(2, 40, 10)
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, -1, -1]])
    return feats, torch.tensor([40, 27]), tokens, torch.tensor([4, 2])


def independent_ctc(log_probs, lens, tokens, token_lens):
    return F.ctc_loss(log_probs.transpose(0, 1), tokens.clamp(min=0), lens, token_lens,
                      reduction="sum") / tokens.size(0)


def test_resolve_layers():
    assert resolve_layers([0.5], 12, "x") == (6,)
    assert resolve_layers([0.5], 5, "x") == (2,)  # floor(L/2), Lee & Watanabe
    assert resolve_layers([0.3333, 0.6667], 12, "x") == (4, 8)
    assert resolve_layers([0.3333, 0.6667], 4, "x") == (1, 3)
    assert resolve_layers([9, 3], 12, "x") == (3, 9)
    for bad, message in (([13], "outside"), ([1.5], "fraction"), ([0], "outside"),
                         (["6"], "neither"), ([6, 0.5], "twice")):
        with pytest.raises(ValueError, match=f"interctc_layers: .*{message}"):
            resolve_layers(bad, 12, "interctc_layers")


@pytest.mark.parametrize("encoder_cls", [ConformerEncoder, TransformerEncoder])
def test_interctc_adds_exactly_its_weighted_term(encoder_cls):
    model = tiny_model(encoder_cls, interctc_layers=[0.5], interctc_weight=0.3).eval()
    feats, feat_lens, tokens, token_lens = batch()
    with torch.no_grad():
        out = model(feats, feat_lens, tokens, token_lens)
        assert {"loss_ctc", "loss_interctc", "loss_att", "acc", "loss"} == set(out)
        ctc_term = 0.7 * out["loss_ctc"] + 0.3 * out["loss_interctc"]
        torch.testing.assert_close(out["loss"], 0.3 * ctc_term + 0.7 * out["loss_att"])
        # the term itself: the shared head on the final-normed output of block 2 of 4
        enc = model.encoder
        x, lens = enc.input_layer(feats, feat_lens)
        mask = padding_mask(lens, x.size(1))
        if encoder_cls is ConformerEncoder:
            x, pos_emb = enc.pos_enc(x)
            for layer in enc.layers[:2]:
                x = layer(x, pos_emb, mask)
        else:
            x = enc.pos_enc(x)
            for layer in enc.layers[:2]:
                x = layer(x, mask.unsqueeze(1))
        log_probs = model.ctc_log_probs(enc.final_norm(x))
        expected = independent_ctc(log_probs, lens, tokens, token_lens)
        torch.testing.assert_close(out["loss_interctc"], expected)
        # the other terms are those of the same model without InterCTC
        plain = tiny_model(encoder_cls).eval()
        plain.load_state_dict(model.state_dict())
        reference = plain(feats, feat_lens, tokens, token_lens)
        for key in ("loss_ctc", "loss_att"):
            torch.testing.assert_close(out[key], reference[key])


def test_several_layers_separate_heads_and_ctc_only():
    model = tiny_model(with_decoder=False, interctc_layers=[1, 3], interctc_weight=0.5,
                       interctc_shared_head=False).eval()
    assert len(model.interctc.heads) == 2
    counts = count_parameters(model)
    assert counts["interctc"] == 2 * (16 * VOCAB + VOCAB) == counts["training_only"]
    feats, feat_lens, tokens, token_lens = batch()
    with torch.no_grad():
        out = model(feats, feat_lens, tokens, token_lens)
    mean = (out["loss_interctc_l1"] + out["loss_interctc_l3"]) / 2
    torch.testing.assert_close(out["loss_interctc"], mean)
    torch.testing.assert_close(out["loss"], 0.5 * out["loss_ctc"] + 0.5 * mean)


def test_backward_reaches_separate_heads():
    model = tiny_model(interctc_layers=[2], interctc_weight=0.3, interctc_shared_head=False)
    model(*batch())["loss"].backward()
    assert all(p.grad is not None for p in model.interctc.parameters())


def test_contextnet_needs_separate_heads():
    encoder = ContextNetEncoder(input_dim=10, alpha=1 / 16, layers_per_block=1)
    with pytest.raises(ValueError, match="interctc_shared_head"):
        ASRModel(encoder, None, VOCAB, interctc_layers=[2], interctc_weight=0.3)
    model = ASRModel(encoder, None, VOCAB, interctc_layers=[5], interctc_weight=0.3,
                     interctc_shared_head=False)
    out = model(*batch())  # layer 5 (C4) runs at half the frame rate, with its own lengths
    assert torch.isfinite(out["loss_interctc"])


def test_invalid_settings_are_named():
    with pytest.raises(ValueError, match="interctc_layers is empty"):
        tiny_model(interctc_weight=0.3)
    with pytest.raises(ValueError, match="interctc_weight"):
        tiny_model(interctc_layers=[2], interctc_weight=1.5)
    with pytest.raises(ValueError, match="ctc_weight > 0"):
        tiny_model(interctc_layers=[2], interctc_weight=0.3, ctc_weight=0.0)


def test_layers_without_a_weight_build_no_interctc():
    """interctc_weight 0 (the default) with layers: no InterCTC at all (as ESPnet), so no
    logged loss that counts for nothing and no extra head trained by nothing; the loss is
    the plain model's."""
    plain = tiny_model().eval()
    model = tiny_model(interctc_layers=[2], interctc_shared_head=False).eval()
    assert model.interctc is None
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters())
    out, ref = model(*batch()), plain(*batch())
    assert "loss_interctc" not in out and torch.equal(out["loss"], ref["loss"])
