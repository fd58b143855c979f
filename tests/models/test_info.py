import json

import pytest

from asrkit.bin.info import main
from asrkit.config import compose_train_config
from asrkit.text.registry import train_tokenizer

WENET_AISHELL = 42_937_856 + 770 * 4233  # WeNet's AISHELL-1 Conformer (Yao et al. 2021): 46,197,266


def run_json(capsys, *args):
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_aishell_conformer_matches_wenet_parameter_count(capsys):
    counts = run_json(capsys, "+experiment=aishell/conformer", "vocab_size=4233")
    assert abs(counts["total"] - WENET_AISHELL) <= 0.005 * WENET_AISHELL
    assert counts["total"] == counts["encoder"] + counts["decoder"] + counts["ctc"]
    assert counts["ctc"] == 257 * 4233 and counts["vocab_size"] == 4233


@pytest.mark.parametrize("experiment", [
    "librispeech/conformer_s", "librispeech/conformer_m", "librispeech/conformer_l",
    "synth/transformer", "synth/conformer",
])
def test_every_preset_builds(capsys, experiment):
    counts = run_json(capsys, f"+experiment={experiment}", "vocab_size=500")
    assert counts["encoder"] > 0 and counts["decoder"] > 0


def conformer_encoder_parameters(d: int, layers: int, kernel: int, mel_bins: int = 80) -> int:
    """Closed form of a Conformer encoder with FFN 4d, conv2d 4x subsampling (d channels) and
    BatchNorm in the conv module, counted by hand from the paper's block (Gulati et al. 2020)."""
    freq = ((mel_bins - 3) // 2 + 1 - 3) // 2 + 1
    subsampling = (9 * d + d) + (9 * d * d + d) + (freq * d * d + d)  # conv, conv, linear
    ffn = d * 4 * d + 4 * d + 4 * d * d + d
    mhsa = 4 * (d * d + d) + d * d + 2 * d  # q, k, v, out; linear_pos; u and v biases
    conv = (2 * d * d + 2 * d) + (kernel * d + d) + 2 * d + (d * d + d)  # pw, dw, BN, pw
    block = 2 * ffn + mhsa + conv + 5 * 2 * d  # macaron FFNs and 5 LayerNorms
    return subsampling + layers * block + 2 * d  # + the final LayerNorm


# Gulati et al. 2020, table 1: S 16 blocks d 144 4 heads, M 16 / 256 / 4,
# L 17 / 512 / 8; FFN 4d; kernel 31 (odd, as ESPnet/WeNet; the paper's 32 is even).
# The paper's 10.3M / 30.7M / 118.8M include its 1-layer LSTM transducer decoder.
LIBRISPEECH_CONFORMERS = [
    ("librispeech/conformer_s", 16, 144, 4, 8_690_400),
    ("librispeech/conformer_m", 16, 256, 4, 27_262_464),
    ("librispeech/conformer_l", 17, 512, 8, 114_850_304),
]


@pytest.mark.parametrize("experiment,blocks,d_model,heads,encoder_params", LIBRISPEECH_CONFORMERS)
def test_librispeech_conformer_presets_have_the_paper_shapes(capsys, experiment, blocks, d_model,
                                                             heads, encoder_params):
    encoder = compose_train_config([f"+experiment={experiment}", "vocab_size=500"])["encoder"]
    assert encoder["_target_"].endswith("ConformerEncoder")
    assert (encoder["num_layers"], encoder["d_model"], encoder["num_heads"]) == (blocks, d_model,
                                                                                 heads)
    assert encoder["ffn_dim"] == 4 * d_model and encoder["kernel_size"] == 31
    assert encoder["input_layer"] == "conv2d4" and encoder["conv_norm"] == "batch_norm"
    assert encoder.get("input_channels") is None and encoder["input_dim"] == 80
    counts = run_json(capsys, f"+experiment={experiment}", "vocab_size=500")
    assert counts["encoder"] == encoder_params
    assert counts["encoder"] == conformer_encoder_parameters(d_model, blocks, kernel=31)


def test_ctc_only_model_and_table_output(capsys):
    counts = run_json(capsys, "model=ctc", "encoder.num_layers=1", "vocab_size=50")
    assert counts["decoder"] == 0
    assert main(["encoder=transformer", "decoder=none", "encoder.num_layers=1",
                 "vocab_size=50"]) == 0
    out = capsys.readouterr().out
    assert "TransformerEncoder" in out and "total" in out and "decoder" in out


@pytest.mark.parametrize("overrides", [
    ["+experiment=synth/conformer", "decoder=none"],
    ["+experiment=aishell/conformer", "model=ctc"],
])
def test_ctc_only_with_a_preset(capsys, overrides):
    counts = run_json(capsys, *overrides, "vocab_size=4233")
    assert counts["decoder"] == 0
    assert counts["total"] == counts["encoder"] + counts["ctc"]


def test_vocab_size_from_tokenizer_dir(tmp_path, capsys):
    tokenizer = train_tokenizer(["abc abd", "bcd"], "char", None)
    tokenizer.save(tmp_path / "tok")
    counts = run_json(capsys, "encoder.num_layers=1", "decoder.num_layers=1",
                      f"tokenizer.dir={tmp_path / 'tok'}")
    assert counts["vocab_size"] == tokenizer.vocab_size


@pytest.mark.parametrize("args,named", [
    ([], "vocab_size"),
    (["vocab_size=10", "encoder.num_blokcs=3"], "encoder.num_blokcs"),
    (["vocab_size=10", "+encoder.num_blokcs=3"], "encoder.num_blokcs"),
    (["vocab_size=10", "encodr=conformer"], "encodr"),
])
def test_errors_are_one_line_naming_the_key(capsys, args, named):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and named in err


# (preset, the paper's total in millions: Gulati et al. 2020, table 1; Han et al. 2020)
TRANSDUCER_PRESETS = [
    ("librispeech/conformer_transducer_s", 10.3), ("librispeech/conformer_transducer_m", 30.7),
    ("librispeech/conformer_transducer_l", 118.8), ("librispeech/contextnet_s", 10.8),
    ("librispeech/contextnet_m", 31.4), ("librispeech/contextnet_l", 112.7),
]


@pytest.mark.parametrize("experiment,paper", TRANSDUCER_PRESETS)
def test_transducer_presets_have_the_papers_sizes(experiment, paper):
    """Within 2 % of the paper's total at its 1k word pieces (built on the meta device)."""
    import torch

    from asrkit.models.build import build_model
    from asrkit.models.param_count import count_parameters

    config = compose_train_config([f"+experiment={experiment}", "vocab_size=1024"])
    with torch.device("meta"):
        model = build_model(config)
    counts = count_parameters(model)
    assert model.transducer is not None and model.ctc is None and model.decoder is None
    assert abs(counts["total"] - paper * 1e6) <= 0.02 * paper * 1e6, counts["total"]
    assert counts["total"] == counts["encoder"] + counts["transducer"]
