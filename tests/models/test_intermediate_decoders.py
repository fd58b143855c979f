import pytest
import torch

from asrkit.models.asr_model import ASRModel
from asrkit.models.build import ModelConfigError, build_model
from asrkit.models.label_smoothing import LabelSmoothingLoss
from asrkit.models.mask import padding_mask
from asrkit.models.param_count import count_parameters

VOCAB = 10
ENCODER = {"_target_": "asrkit.models.encoders.conformer.ConformerEncoder", "input_dim": 10,
           "d_model": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 3, "kernel_size": 3}
DECODER = {"_target_": "asrkit.models.decoders.transformer.TransformerDecoder", "d_model": 8,
           "num_heads": 2, "ffn_dim": 16, "num_layers": 1}


def build(**model_options) -> ASRModel:
    torch.manual_seed(0)
    config = {"encoder": dict(ENCODER), "decoder": dict(DECODER), "vocab_size": VOCAB,
              "model": {"_target_": "asrkit.models.asr_model.ASRModel", "ctc_weight": 0.3,
                        **model_options}}
    return build_model(config)


def batch():
    torch.manual_seed(1)
    tokens = torch.tensor([[3, 4, 5], [6, 7, -1]])
    return torch.randn(2, 40, 10), torch.tensor([40, 30]), tokens, torch.tensor([3, 2])


def test_builder_makes_one_decoder_per_layer():
    model = build(inter_decoder_layers=[0.3333, 0.6667])
    assert model.inter_decoder_layers == (1, 2)  # 1/3 and 2/3 of 3 blocks
    assert len(model.inter_decoders) == 2
    for decoder in model.inter_decoders:
        assert decoder.layers[0].src_attn.linear_k.in_features == 16
        assert decoder is not model.decoder
    counts = count_parameters(model)
    assert counts["inter_decoders"] == 2 * counts["decoder"] == counts["training_only"]
    assert counts["inference"] == counts["encoder"] + counts["decoder"] + counts["ctc"]


def test_intermediate_decoders_add_exactly_their_weighted_terms():
    model = build(inter_decoder_layers=[1, 2], inter_decoder_weight=[1.0, 0.5]).eval()
    feats, feat_lens, tokens, token_lens = batch()
    with torch.no_grad():
        out = model(feats, feat_lens, tokens, token_lens)
        att = out["loss_att"] + 1.0 * out["loss_att_inter1"] + 0.5 * out["loss_att_inter2"]
        torch.testing.assert_close(out["loss"], 0.3 * out["loss_ctc"] + 0.7 * att)
        assert {"acc_inter1", "acc_inter2"} <= set(out)
        # loss_att_inter1 from an independent computation: decoder 1 on block 1's output
        enc = model.encoder
        x, lens = enc.input_layer(feats, feat_lens)
        x, pos_emb = enc.pos_enc(x)
        mask = padding_mask(lens, x.size(1))
        hidden = enc.final_norm(enc.layers[0](x, pos_emb, mask))
        dec_in = torch.tensor([[2, 3, 4, 5], [2, 6, 7, 2]])
        dec_out = torch.tensor([[3, 4, 5, 2], [6, 7, 2, 0]])
        dec_mask = torch.tensor([[True] * 4, [True, True, True, False]])
        logits = model.inter_decoders[0](dec_in, dec_mask, hidden, mask)
        expected = LabelSmoothingLoss(VOCAB, 0.1)(logits, dec_out, dec_mask)
        torch.testing.assert_close(out["loss_att_inter1"], expected)
        # top losses are those of the model without intermediate decoders
        plain = build().eval()
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("inter_")}
        plain.load_state_dict(state)
        reference = plain(feats, feat_lens, tokens, token_lens)
        for key in ("loss_ctc", "loss_att", "acc"):
            torch.testing.assert_close(out[key], reference[key])


def test_each_weight_goes_with_the_layer_written_at_its_place():
    written = build(inter_decoder_layers=[2, 1], inter_decoder_weight=[0.0, 1.0]).eval()
    assert written.inter_decoder_layers == (1, 2)  # decoder k: from the lowest layer up
    assert written.inter_decoder_weights == [1.0, 0.0]
    feats, feat_lens, tokens, token_lens = batch()
    with torch.no_grad():
        out = written(feats, feat_lens, tokens, token_lens)
        att = out["loss_att"] + out["loss_att_inter1"]  # layer 1 at 1.0, layer 2 at 0.0
        torch.testing.assert_close(out["loss"], 0.3 * out["loss_ctc"] + 0.7 * att)
    fractions = build(inter_decoder_layers=[0.6667, 0.3333], inter_decoder_weight=[0.2, 0.7])
    assert fractions.inter_decoder_weights == [0.7, 0.2]


def test_training_only_decoding_is_unchanged_and_gradients_flow():
    model = build(inter_decoder_layers=[0.3333, 0.6667])
    model(*batch())["loss"].backward()
    assert all(p.grad is not None for p in model.inter_decoders.parameters())
    model.eval()
    feats, feat_lens, _, _ = batch()
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
        scores = model.score_hypotheses(enc, enc_lens, [[3, 4], [5]])
    assert scores.shape == (2,)


def test_with_interctc_and_every_term_logged():
    model = build(inter_decoder_layers=[2], interctc_layers=[1], interctc_weight=0.3).eval()
    with torch.no_grad():
        out = model(*batch())
    assert set(out) == {"loss", "loss_ctc", "loss_interctc", "loss_att", "acc",
                        "loss_att_inter1", "acc_inter1"}
    ctc = 0.7 * out["loss_ctc"] + 0.3 * out["loss_interctc"]
    torch.testing.assert_close(out["loss"],
                               0.3 * ctc + 0.7 * (out["loss_att"] + out["loss_att_inter1"]))


def test_errors_name_the_setting():
    with pytest.raises(ModelConfigError,
                       match="^model.inter_decoder_weight: 1 weights for 2 intermediate"):
        build(inter_decoder_layers=[1, 2], inter_decoder_weight=[1.0])
    with pytest.raises(ModelConfigError, match="inter_decoder_layers: layer 4 is outside"):
        build(inter_decoder_layers=[4])
    config = {"encoder": dict(ENCODER), "decoder": None, "vocab_size": VOCAB,
              "model": {"_target_": "asrkit.models.asr_model.ASRModel",
                        "inter_decoder_layers": [1]}}
    with pytest.raises(ModelConfigError, match="needs an attention decoder"):
        build_model(config)
    config["decoder"] = dict(DECODER)
    config["model"]["inter_decoders"] = []
    with pytest.raises(ModelConfigError, match="model.inter_decoders: set by the model builder"):
        build_model(config)
