import json

import pytest
import torch

from asrkit.bin.info import main as info_main
from asrkit.models.asr_model import ASRModel
from asrkit.models.build import ModelConfigError, build_model
from asrkit.models.decoders.transformer import TransformerDecoder
from asrkit.models.encoders.moe_conformer import MoEConformerEncoder
from asrkit.models.feed_forward import FeedForward
from asrkit.models.moe import MoEFeedForward
from asrkit.models.param_count import count_parameters, format_parameter_table

VOCAB = 12


def tiny_encoder(**kwargs) -> MoEConformerEncoder:
    torch.manual_seed(0)
    options = {"input_dim": 20, "d_model": 16, "num_heads": 4, "ffn_dim": 32, "num_layers": 2,
               "kernel_size": 5, "num_experts": 3}
    encoder = MoEConformerEncoder(**{**options, **kwargs})
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    return encoder


def test_default_placement_is_the_second_ffn_of_every_block():
    encoder = tiny_encoder()
    for layer in encoder.layers:
        assert isinstance(layer.feed_forward, MoEFeedForward)
        assert isinstance(layer.feed_forward_macaron, FeedForward)
        assert layer.feed_forward.num_experts == 3 and layer.feed_forward.top_k == 1
    encoder = tiny_encoder(num_layers=3, moe_ffns=["first", "second"], moe_layers=[2])
    kinds = [(type(layer.feed_forward_macaron), type(layer.feed_forward))
             for layer in encoder.layers]
    assert kinds == [(FeedForward, FeedForward), (MoEFeedForward, MoEFeedForward),
                     (FeedForward, FeedForward)]
    with pytest.raises(ValueError, match="moe_ffns"):
        tiny_encoder(moe_ffns=["third"])
    with pytest.raises(ValueError, match="outside"):
        tiny_encoder(moe_layers=[3])


@pytest.mark.parametrize("options", [{}, {"top_k": 2, "embedding_layers": 1, "embedding_dim": 8}])
def test_padding_invariance(options, padded_batch, assert_padding_invariant):
    encoder = tiny_encoder(**options).eval()
    feats, lens = padded_batch([50, 33, 19], 20)
    assert_padding_invariant(encoder, feats, lens)


def test_encoder_losses_terms_and_shared_embedding_ctc():
    encoder = tiny_encoder(embedding_layers=1, embedding_dim=8, embedding_ctc_weight=0.2,
                           vocab_size=VOCAB, switch_loss_weight=0.01)
    out = encoder.forward_with_intermediates(torch.randn(2, 40, 20), torch.tensor([40, 30]),
                                             layers=(1,))
    assert set(out.intermediates) == {1}
    terms = out.aux_terms
    expected = (0.01 * terms["loss_moe_switch"] + 0.15 * terms["loss_moe_sparsity"]
                + 0.15 * terms["loss_moe_importance"])
    torch.testing.assert_close(out.aux_loss.detach(), expected)
    assert {f"moe_load_expert{i}" for i in range(3)} <= set(terms)
    assert out.aux_ctc["embedding"].weight == 0.2
    assert out.aux_ctc["embedding"].hidden.shape == (2, out.enc.size(1), 8)
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_encoder(embedding_layers=1, embedding_ctc_weight=0.2)


def test_model_adds_exactly_the_encoder_losses_and_trains_every_parameter():
    encoder = tiny_encoder(embedding_layers=1, embedding_dim=8, embedding_ctc_weight=0.2,
                           vocab_size=VOCAB)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    model = ASRModel(encoder, decoder, VOCAB, ctc_weight=0.3)
    feats, feat_lens = torch.randn(2, 40, 20), torch.tensor([40, 30])
    tokens, token_lens = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    out = model(feats, feat_lens, tokens, token_lens)
    for key in ("loss_moe", "loss_moe_switch", "loss_moe_sparsity", "loss_moe_importance",
                "moe_max_load", "moe_load_expert0", "loss_ctc_embedding"):
        assert out[key].dim() == 0, key
    expected = (0.3 * out["loss_ctc"] + 0.7 * out["loss_att"] + out["loss_moe"]
                + 0.2 * out["loss_ctc_embedding"])
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    enc, enc_lens = model.encode(feats, feat_lens)  # decoding: no losses computed
    assert enc.shape[:2] == (2, int(enc_lens.max()))


def test_mwer_adds_the_encoder_losses_as_training_does():
    encoder = tiny_encoder(embedding_layers=1, embedding_dim=8, embedding_ctc_weight=0.2,
                           vocab_size=VOCAB)
    decoder = TransformerDecoder(VOCAB, 16, d_model=16, num_heads=2, ffn_dim=32, num_layers=1)
    model = ASRModel(encoder, decoder, VOCAB, ctc_weight=0.3).eval()
    feats, feat_lens = torch.randn(2, 40, 20), torch.tensor([40, 30])
    tokens, token_lens = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    out = model.forward_mwer(feats, feat_lens, tokens, token_lens,
                             [[[3, 4, 5], [3, 4]], [[6, 7], [6]]], [[0, 1], [0, 1]])
    training = model(feats, feat_lens, tokens, token_lens)
    for key in ("loss_moe", "loss_ctc_embedding", "moe_max_load"):
        torch.testing.assert_close(out[key], training[key])
    torch.testing.assert_close(out["loss"], out["loss_mwer"] + 0.01 * out["loss_att"]
                               + out["loss_moe"] + 0.2 * out["loss_ctc_embedding"])
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.encoder.embedding_ctc.parameters())


def test_3m_takes_a_transducer_as_the_other_joint_models_do(capsys):
    assert info_main(["+experiment=synth/3m", "transducer=stateless",
                      "model.transducer_weight=0.5", "vocab_size=100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["transducer"] > 0


def test_active_per_frame_parameters():
    encoder = tiny_encoder(num_layers=2, num_experts=4, top_k=1, expert_ffn_dim=8)
    model = ASRModel(encoder, None, VOCAB)
    counts = count_parameters(model)
    expert = 16 * 8 + 8 + 8 * 16 + 16
    assert counts["active_per_frame"] == counts["total"] - 2 * 3 * expert
    assert counts["inference"] == counts["total"] and counts["training_only"] == 0
    assert "active per frame" in format_parameter_table(counts)


def test_asrkit_info_reports_total_and_active(capsys):
    assert info_main(["encoder=moe_conformer", "encoder.num_experts=8", "vocab_size=100",
                      "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    expert = 2 * 256 * 2048 + 2048 + 256  # one FFN expert of the default shape
    assert counts["total"] - counts["active_per_frame"] == 12 * 7 * expert
    # a frame meets the dense WeNet-shaped model (42,937,856 + 770 V) plus 12 routers
    assert counts["active_per_frame"] == 42_937_856 + 770 * 100 + 12 * (256 * 8 + 8)
    assert counts["active_per_frame"] < counts["total"]
    assert info_main(["encoder=moe_conformer", "encoder.num_layers=1", "vocab_size=10"]) == 0
    table = capsys.readouterr().out
    assert "MoEConformerEncoder" in table and "active per frame" in table


def test_builder_fills_in_vocab_size_for_the_embedding_ctc():
    config = {"encoder": {"_target_": "asrkit.models.encoders.moe_conformer.MoEConformerEncoder",
                          "input_dim": 20, "d_model": 16, "num_heads": 2, "ffn_dim": 32,
                          "num_layers": 1, "num_experts": 2, "embedding_layers": 1,
                          "embedding_ctc_weight": 0.1},
              "decoder": None, "model": {"_target_": "asrkit.models.asr_model.ASRModel"},
              "vocab_size": 9}
    model = build_model(config)
    assert model.encoder.embedding_ctc.linear.out_features == 9
    assert model.encoder.embedding_ctc.blank_id == model.ctc.blank_id == 0
    config["model"]["blank_id"] = 4  # every CTC head of a model has the model's blank
    model = build_model(config)
    assert model.encoder.embedding_ctc.blank_id == model.ctc.blank_id == 4
    config["encoder"]["vocab_size"] = 9
    with pytest.raises(ModelConfigError, match="encoder.vocab_size: set by the model builder"):
        build_model(config)


SYNTH_CONFORMER = 2_851_384  # asrkit info +experiment=synth/conformer vocab_size=100


@pytest.mark.parametrize("experiment", [
    "synth/transformer", "synth/moe_conformer", "synth/interctc", "synth/3m", "synth/contextnet",
    "synth/contextnet_transducer", "synth/conformer_transducer",
    "librispeech/contextnet_s", "librispeech/contextnet_m", "librispeech/contextnet_l",
])
def test_new_presets_build(capsys, experiment):
    assert info_main([f"+experiment={experiment}", "vocab_size=100", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["total"] == (counts["encoder"] + counts["decoder"] + counts["ctc"]
                               + counts["transducer"] + counts["inter_decoders"]
                               + counts["interctc"])
    if experiment.startswith("synth/"):  # the size of synth/conformer
        assert abs(counts["inference"] - SYNTH_CONFORMER) < 0.05 * SYNTH_CONFORMER, counts


def test_model_3m_picks_the_moe_encoder_and_intermediate_decoders(capsys):
    assert info_main(["model=3m", "encoder.num_layers=3", "encoder.d_model=16",
                      "encoder.ffn_dim=32", "decoder.num_layers=1", "decoder.d_model=16",
                      "decoder.ffn_dim=32", "vocab_size=10", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["inter_decoders"] == 2 * counts["decoder"]
    assert counts["training_only"] == counts["inter_decoders"]
    assert counts["active_per_frame"] < counts["inference"] < counts["total"]
