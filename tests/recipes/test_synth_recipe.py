"""recipes/synth: the model comparison script (stages 0-2 once, then stages 3-5 per preset,
two at a time, then one `asrkit compare` table) on a 40-utterance corpus with tiny models."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "encoder.num_layers=1", "encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
    "encoder.input_channels=8", "decoder.num_layers=1", "decoder.d_model=32",
    "decoder.num_heads=2", "decoder.ffn_dim=64", "trainer.max_epochs=1",
    "trainer.num_attention_images=0", "data.num_workers=0",
]


@pytest.mark.long(60)
def test_compare_models_trains_decodes_and_tabulates(tmp_path):
    command = [
        "bash", str(ROOT / "recipes/synth/compare_models.sh"), "--models", "transformer conformer",
        "--jobs", "2", "--methods", "ctc_greedy attention_rescoring", "--num_utts", "40",
        "--vocab_size", "40", "--manifests", str(tmp_path / "data"),
        "--exp_root", str(tmp_path / "exp"), "--", *TINY,  # --avg_num 3 over a 1-epoch run
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    cmvn = json.loads((tmp_path / "data" / "cmvn.json").read_text())
    assert len(cmvn["mean"]) == 40  # the synth recipe's 40 mel bins
    for model in ("transformer", "conformer"):
        exp = tmp_path / "exp" / f"synth_{model}"
        config = (exp / "config.yaml").read_text()
        assert f"{model.capitalize()}Encoder" in config
        # a 1-epoch run: synth/base's 200 warm-up updates are cut to a quarter of the run,
        # and the recipe's --avg_num 3 averages the one epoch there is
        log = (exp / "train.log").read_text()
        assert "scheduler.warmup_steps=200 is more than a quarter of this run's" in log
        assert (exp / "avg_1.pt").is_file() and not (exp / "avg_3.pt").exists()
        for test_set in ("test", "test_unseen"):
            for method in ("ctc_greedy", "attention_rescoring"):
                run = next(p for p in (exp / "decode" / "avg_1" / test_set).iterdir()
                           if p.name.split("-")[0] == method)
                wer = json.loads((run / "wer.json").read_text())
                assert wer["utts"] >= 1 and wer["method"] == method and wer["wer"] >= 0
    table = (tmp_path / "exp" / "synth_models.md").read_text()
    assert table in result.stdout
    assert "| synth_transformer |" in table and "| synth_conformer |" in table


def test_compare_models_names_an_unknown_preset(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "recipes/synth/compare_models.sh"), "--models", "conformr",
         "--num_utts", "40", "--vocab_size", "40", "--manifests", str(tmp_path / "data"),
         "--exp_root", str(tmp_path / "exp")],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 2
    assert "no preset conf/experiment/synth/conformr.yaml" in result.stderr
    assert not (tmp_path / "data").exists()


def test_compare_models_checks_its_job_count_first(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "recipes/synth/compare_models.sh"), "--jobs", "0",
         "--manifests", str(tmp_path / "data"), "--exp_root", str(tmp_path / "exp")],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "compare_models.sh: --jobs must be a whole number >= 1, got '0'\n"
    assert not (tmp_path / "data").exists()
