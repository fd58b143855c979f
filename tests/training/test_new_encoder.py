"""A new encoder is one Python file plus one YAML file: both written in a temporary
directory, nothing in asrkit or conf/ edited, and `asrkit train --config-dir` trains it."""

from __future__ import annotations

import torch

from asrkit.bin.train import main

ENCODER = '''
import torch
from torch import nn

from asrkit.arg_types import PositiveInt
from asrkit.models.encoder_output import EncoderOutput


class PairEncoder(nn.Module):
    """Frames concatenated in pairs, then a linear layer and tanh: 2x fewer frames."""

    def __init__(self, input_dim: PositiveInt, d_model: PositiveInt = 16) -> None:
        super().__init__()
        self.output_dim = d_model
        self.proj = nn.Linear(2 * input_dim, d_model)

    def output_lengths(self, lengths):
        return lengths // 2

    def intermediate_dims(self):
        return [self.output_dim]

    def forward(self, feats, feat_lens):
        out = self.forward_with_intermediates(feats, feat_lens)
        return out.enc, out.enc_lens

    def forward_with_intermediates(self, feats, feat_lens, layers=()):
        batch, frames, dim = feats.shape
        pairs = feats[:, : frames // 2 * 2].reshape(batch, frames // 2, 2 * dim)
        enc, lens = torch.tanh(self.proj(pairs)), self.output_lengths(feat_lens)
        return EncoderOutput(enc, lens, {1: (enc, lens)} if 1 in layers else {})
'''


def test_a_new_encoder_trains_from_one_file_and_one_yaml(corpus, tmp_path, monkeypatch):
    code, conf = tmp_path / "code", tmp_path / "conf"
    code.mkdir()
    (code / "pair_encoder.py").write_text(ENCODER)
    (conf / "encoder").mkdir(parents=True)
    (conf / "encoder" / "pair.yaml").write_text(
        "_target_: pair_encoder.PairEncoder\ninput_dim: ${data.features.num_mel_bins}\n"
        "d_model: 24\n")
    monkeypatch.syspath_prepend(str(code))
    exp = tmp_path / "exp"
    overrides = [o for o in corpus.overrides(exp, "trainer.max_epochs=1")
                 if not o.startswith("encoder.")]  # the tiny Transformer's sizes
    # the tiny preset sets encoder.d_model (kept: PairEncoder takes it), so size it here
    assert main(["--config-dir", str(conf), *overrides, "encoder=pair", "encoder.d_model=24"]) == 0
    checkpoint = torch.load(exp / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert checkpoint["config"]["encoder"] == {"_target_": "pair_encoder.PairEncoder",
                                               "input_dim": 80, "d_model": 24}
    assert checkpoint["model"]["encoder.proj.weight"].shape == (24, 160)
    assert checkpoint["step"] >= 1 and torch.isfinite(
        torch.tensor(checkpoint["metrics"]["dev_loss"]))


def test_an_encoder_missing_part_of_the_contract_is_named(corpus, tmp_path, monkeypatch, capsys):
    code, conf = tmp_path / "code", tmp_path / "conf"
    code.mkdir()
    (code / "half_encoder.py").write_text(ENCODER.replace("    def output_lengths(self, lengths):\n"
                                                          "        return lengths // 2\n", "")
                                          .replace("self.output_lengths(feat_lens)",
                                                   "feat_lens // 2"))
    (conf / "encoder").mkdir(parents=True)
    (conf / "encoder" / "half.yaml").write_text(
        "_target_: half_encoder.PairEncoder\ninput_dim: ${data.features.num_mel_bins}\n")
    monkeypatch.syspath_prepend(str(code))
    overrides = [o for o in corpus.overrides(tmp_path / "exp") if not o.startswith("encoder.")]
    assert main(["--config-dir", str(conf), *overrides, "encoder=half"]) == 2
    assert capsys.readouterr().err == (
        "asrkit train: encoder._target_: half_encoder.PairEncoder lacks output_lengths of the "
        "encoder contract (asrkit.models.encoder_interface)\n")
    assert not (tmp_path / "exp").exists()
