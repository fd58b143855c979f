"""Every encoder fulfils the contract of asrkit.models.encoder_interface, and its
``output_lengths`` equals what its forward pass returns (lengths and frames)."""

from __future__ import annotations

import pytest
import torch

from asrkit.models.encoder_interface import Encoder, missing_members
from asrkit.models.encoders.conformer import ConformerEncoder
from asrkit.models.encoders.contextnet import ContextNetEncoder
from asrkit.models.encoders.moe_conformer import MoEConformerEncoder
from asrkit.models.encoders.transformer import TransformerEncoder

SMALL = {"d_model": 8, "num_heads": 2, "ffn_dim": 16, "num_layers": 1}
ENCODERS = {
    "transformer-conv2d4": lambda: TransformerEncoder(20, **SMALL),
    "transformer-conv2d6": lambda: TransformerEncoder(20, input_layer="conv2d6", **SMALL),
    "transformer-conv2d8": lambda: TransformerEncoder(20, input_layer="conv2d8", **SMALL),
    "transformer-linear": lambda: TransformerEncoder(20, input_layer="linear", **SMALL),
    "transformer-rel_pos": lambda: TransformerEncoder(20, pos_enc_layer_type="rel_pos", **SMALL),
    "conformer": lambda: ConformerEncoder(20, kernel_size=3, **SMALL),
    "moe_conformer": lambda: MoEConformerEncoder(20, kernel_size=3, num_experts=2, **SMALL),
    "contextnet": lambda: ContextNetEncoder(20, alpha=0.05, layers_per_block=1),
    "contextnet-identity": lambda: ContextNetEncoder(20, alpha=0.05, layers_per_block=1,
                                                     residual="identity"),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_output_lengths_equal_the_forward_pass(name):
    torch.manual_seed(0)
    encoder = ENCODERS[name]().eval()
    assert isinstance(encoder, Encoder) and missing_members(encoder) == []
    lengths = torch.tensor([15, 16, 23, 40, 57, 98, 99])
    feats = torch.randn(len(lengths), int(lengths.max()), 20)
    with torch.no_grad():
        enc, enc_lens = encoder(feats, lengths)
    assert torch.equal(encoder.output_lengths(lengths), enc_lens)
    assert enc.shape[1] == int(enc_lens.max()) and enc.shape[2] == encoder.output_dim
    for length in lengths.tolist():  # alone, unpadded: as many frames as output_lengths says
        with torch.no_grad():
            alone, _ = encoder(feats[:1, :length], torch.tensor([length]))
        assert alone.shape[1] == int(encoder.output_lengths(torch.tensor([length])))


def test_a_module_without_the_members_is_not_an_encoder():
    assert missing_members(torch.nn.Linear(2, 2)) == ["output_dim", "output_lengths",
                                                      "forward_with_intermediates",
                                                      "intermediate_dims"]
