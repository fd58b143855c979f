"""The LibriSpeech and AISHELL-1 recipes, stages 0-6, on tiny trees of the corpora's layout
(synthetic speech, a tiny model, one epoch): every stage runs and leaves its outputs, and a
rerun skips the finished stages."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.recipes.corpus_trees import make_aishell_tree, make_librispeech_tree

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = [
    "encoder.num_layers=1", "encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
    "decoder.num_layers=1", "decoder.d_model=32", "decoder.num_heads=2", "decoder.ffn_dim=64",
    "trainer.max_epochs=1", "trainer.num_attention_images=0", "data.num_workers=0",
]
METHODS = ["ctc_greedy", "attention_rescoring"]


def run_recipe(recipe: str, tmp_path: Path, data: Path, extra: list[str],
               cwd: Path = ROOT, status: int = 0) -> str:
    """The recipe on ``data``, writing tmp_path/data and tmp_path/exp; from another ``cwd``
    than the repository the paths are given relative to it."""
    paths = [data, tmp_path / "data", tmp_path / "exp"]
    if cwd != ROOT:
        paths = [os.path.relpath(p, cwd) for p in paths]
    command = [
        "bash", str(ROOT / f"recipes/{recipe}/run.sh"), "--data", str(paths[0]),
        "--manifests", str(paths[1]), "--exp_root", str(paths[2]),
        "--exp", "tiny", "--avg_num", "1", "--methods", " ".join(METHODS), "--nj", "1",
        *extra, "--", *TINY_MODEL,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    assert result.returncode == status, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def check_outputs(tmp_path: Path, test_sets: list[str], stdout: str, metric: str) -> None:
    exp = tmp_path / "exp" / "tiny"
    for stage in range(7):
        assert f"== stage {stage} (" in stdout and f"stage {stage}" in stdout
    assert (tmp_path / "data" / "cmvn.json").is_file()
    assert (exp / "checkpoints" / "epoch_1.pt").is_file() and (exp / "avg_1.pt").is_file()
    for test_set in test_sets:
        for method in METHODS:
            run = next(p for p in (exp / "decode" / "avg_1" / test_set).iterdir()
                       if p.name.split("-")[0] == method)
            wer = json.loads((run / "wer.json").read_text())
            assert wer["utts"] == 4 and 0 <= wer[metric] and wer["method"] == method
    assert "| tiny |" in stdout  # the compare table of stage 6


@pytest.mark.long(30)
def test_librispeech_recipe_end_to_end(tmp_path):
    """... with manifests and experiments under a path that Hydra's grammar would reject
    unquoted (non-ASCII, comma, '=', brackets, a quote, a space)."""
    subsets = {"train-clean-100": 24, "dev-clean": 4, "dev-other": 4, "test-clean": 4, "test-other": 4}
    corpus = make_librispeech_tree(tmp_path / "corpus", subsets, tmp_path / "synth")
    tmp_path = tmp_path / "wörk, a=b [c] d'e"
    options = ["--vocab_size", "40", "--num_mel_bins", "40"]
    stdout = run_recipe("librispeech", tmp_path, corpus.parent, options)
    test_sets = ["dev-clean", "dev-other", "test-clean", "test-other"]
    check_outputs(tmp_path, test_sets, stdout, "wer")
    assert (tmp_path / "data" / "unigram40" / "spm.model").is_file()
    assert len(json.loads((tmp_path / "data" / "cmvn.json").read_text())["mean"]) == 40
    config = (tmp_path / "exp" / "tiny" / "config.yaml").read_text()
    assert "num_mel_bins: 40" in config
    for subset, count in subsets.items():
        assert len((tmp_path / "data" / f"{subset}.jsonl").read_text().splitlines()) == count
    # another vocabulary size's tokenizer beside it does not make this experiment stale
    other = run_recipe("librispeech", tmp_path, corpus.parent,
                       ["--vocab_size", "30", "--num_mel_bins", "40", "--stop_stage", "2"])
    assert "== stage 2 (tokenizer): done" in other
    rerun = run_recipe("librispeech", tmp_path, corpus.parent, [*options, "--stage", "3"])
    assert "== stage 3 (train): already done with these options, skipping" in rerun
    assert "changed" not in rerun


def test_librispeech_preparation_that_fails_fails_its_stage(tmp_path):
    """Stage 0 is a shell function whose last command succeeds: a failed ``asrkit prepare``
    before it must still fail the stage, and leave no marker."""
    corpus = make_librispeech_tree(tmp_path / "corpus", {"train-clean-100": 2, "dev-clean": 2},
                                   tmp_path / "synth")
    out = run_recipe("librispeech", tmp_path, corpus.parent, ["--stop_stage", "0"], status=1)
    assert "subset(s) dev-other, test-clean, test-other not found" in out
    assert "== stage 0 (download and prepare): FAILED" in out
    assert not (tmp_path / "data" / ".stages" / "stage_0.done").exists()


@pytest.mark.long(35)
def test_aishell_recipe_end_to_end(tmp_path):
    corpus = make_aishell_tree(tmp_path / "corpus", {"train": 24, "dev": 4, "test": 4},
                               tmp_path / "synth")
    # run from the corpus's directory, every path relative to it
    stdout = run_recipe("aishell", tmp_path, corpus.parent, [], cwd=tmp_path)
    check_outputs(tmp_path, ["dev", "test"], stdout, "cer")
    units = (tmp_path / "data" / "char" / "units.txt").read_text().splitlines()
    assert units[:3] == ["<blank> 0", "<unk> 1", "<sos/eos> 2"] and "▁ 3" not in units
    first = json.loads((tmp_path / "data" / "test.jsonl").read_text().splitlines()[0])
    assert " " not in first["text"]  # AISHELL text without spaces between words
