import json

import pytest

from asrkit.bin.info import main
from asrkit.text.tokenizer import train_tokenizer

WENET_AISHELL = 42_937_856 + 770 * 4233  # REFERENCE.md: 46,197,266


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


def test_ctc_only_model_and_table_output(capsys):
    counts = run_json(capsys, "model=ctc", "encoder.num_layers=1", "vocab_size=50")
    assert counts["decoder"] == 0
    assert main(["encoder=transformer", "decoder=none", "encoder.num_layers=1",
                 "vocab_size=50"]) == 0
    out = capsys.readouterr().out
    assert "TransformerEncoder" in out and "total" in out and "decoder" in out


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
