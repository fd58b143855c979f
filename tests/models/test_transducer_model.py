"""The joint model with a transducer branch: alone, with CTC, with CTC and the attention
decoder, with InterCTC, on every encoder; the total loss is the weighted sum of its terms."""

from __future__ import annotations

import pytest
import torch

from asrkit.config import compose_train_config
from asrkit.models.build import ModelConfigError, build_model

SMALL = ["encoder.d_model=16", "encoder.num_heads=2", "encoder.ffn_dim=32",
         "encoder.num_layers=2", "decoder.d_model=16", "decoder.num_heads=2",
         "decoder.ffn_dim=32", "decoder.num_layers=1", "transducer.prediction_dim=16",
         "transducer.joint_dim=16", "data.features.num_mel_bins=20", "vocab_size=12"]


def _model(*overrides: str):
    small = [o for o in SMALL if "decoder=none" not in overrides or not o.startswith("decoder.")]
    torch.manual_seed(0)
    return build_model(compose_train_config([*overrides, *small]))


def _batch():
    torch.manual_seed(1)
    feats = torch.randn(3, 60, 20)
    feat_lens = torch.tensor([60, 48, 33])
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, -1, -1], [9, -1, -1, -1]])
    return feats, feat_lens, tokens, torch.tensor([4, 2, 1])


def test_a_transducer_alone_has_no_ctc_head_and_optimises_its_loss():
    model = _model("model=transducer", "transducer=lstm").eval()
    assert model.ctc is None and model.decoder is None and model.transducer is not None
    out = model(*_batch())
    assert set(out) == {"loss", "loss_transducer"}
    assert torch.equal(out["loss"], out["loss_transducer"])
    with pytest.raises(RuntimeError, match="needs a CTC head"):
        model.ctc_log_probs(torch.zeros(1, 3, 16))


@pytest.mark.parametrize("overrides, weights", [
    (["transducer=lstm", "model.transducer_weight=0.6", "model.ctc_weight=0.3"], (0.6, 0.3)),
    (["transducer=stateless", "model.transducer_weight=0.5", "decoder=none"], (0.5, 1.0)),
    (["transducer=lstm", "model=interctc", "model.transducer_weight=0.4",
      "model.interctc_layers=[1]"], (0.4, 0.3)),
])
def test_a_hybrids_loss_is_the_weighted_sum_of_its_terms(overrides, weights):
    model = _model(*overrides).eval()
    tw, cw = weights
    out = model(*_batch())
    ctc_term = out["loss_ctc"]
    if "loss_interctc" in out:
        w = model.interctc_weight
        ctc_term = (1 - w) * out["loss_ctc"] + w * out["loss_interctc"]
    att = out.get("loss_att", torch.tensor(0.0))
    expected = tw * out["loss_transducer"] + (1 - tw) * (cw * ctc_term + (1 - cw) * att)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert ("loss_att" in out) == (cw < 1.0)


@pytest.mark.parametrize("encoder", ["transformer", "conformer", "moe_conformer", "contextnet"])
def test_every_encoder_takes_a_transducer(encoder):
    overrides = [f"encoder={encoder}", "model=transducer", "transducer=stateless"]
    if encoder == "contextnet":
        overrides += ["encoder.alpha=0.05", "encoder.layers_per_block=1"]
    small = [o for o in SMALL if not (encoder == "contextnet" and o.startswith("encoder."))]
    torch.manual_seed(0)
    model = build_model(compose_train_config([*overrides, *small])).eval()
    out = model(*_batch())
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    out["loss"].backward()
    assert all(p.grad is not None for p in model.transducer.parameters())


def test_a_transducer_alone_with_a_decoder_is_refused():
    with pytest.raises(ModelConfigError, match="model.transducer_weight: 1 leaves no loss"):
        _model("transducer=lstm", "model.transducer_weight=1.0")
    with pytest.raises(ModelConfigError, match="transducer_weight: must be > 0 with a "):
        _model("transducer=lstm")
