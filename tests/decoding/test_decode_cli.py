"""`asrkit decode` end to end: a tiny random model on a tiny synth set."""

import json

import pytest

from asrkit.bin.decode import main
from asrkit.scoring.wer import read_text

WER_KEYS = {"wer", "cer", "sub", "del", "ins", "ref_words", "utts", "rtf"}


def test_decode_writes_every_set_and_method(synth_exp, synth_dir, capsys):
    sets = [synth_dir / "test.jsonl", synth_dir / "test_unseen.jsonl"]
    rc = main([f"exp_dir={synth_exp}", "checkpoint=avg_2.pt",
               f"test_sets=[{','.join(map(str, sets))}]", "beam=3", "ctc_weight=0.5",
               "normalize.case=lower", "batch_size=2"])
    assert rc == 0
    out = capsys.readouterr().out
    methods = ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint"]
    for manifest in sets:
        set_name = manifest.stem
        for method in methods:
            run = synth_exp / "decode" / set_name / method
            assert {p.name for p in run.iterdir()} == {"hyp.txt", "ref.txt", "wer.json",
                                                       "errors.txt"}
            summary = json.loads((run / "wer.json").read_text())
            assert WER_KEYS <= set(summary)
            assert summary["utts"] == 2 and summary["rtf"] > 0
            assert summary["normalize"] == {"case": "lower", "punctuation": "keep"}
            assert summary["checkpoint"] == "avg_2.pt"
            refs, hyps = read_text(run / "ref.txt"), read_text(run / "hyp.txt")
            assert list(refs) == list(hyps)
            assert summary["ref_words"] == sum(len(t.split()) for t in refs.values())
            assert (summary["sub"] + summary["del"] + summary["ins"]
                    == pytest.approx(summary["wer"] * summary["ref_words"] / 100, abs=1e-3))
            assert "REF:" in (run / "errors.txt").read_text()
            assert f"{set_name:<14} {method:<20} WER" in out
    results = (synth_exp / "results.md").read_text()
    assert "| method | test | test_unseen |" in results
    assert "| joint |" in results and "parameters" in results


@pytest.mark.parametrize("override,message", [
    ("bemm=3", "Could not override 'bemm'"),
    ("methods=[ctc_greedy,beam]", "unknown method 'beam'"),
    ("ctc_weight=1.5", "ctc_weight: must be in [0, 1]"),
    ("normalize.case=title", "normalize.case: 'title' is not one of"),
])
def test_bad_config_fails_at_once_naming_the_key(synth_exp, synth_dir, capsys, override, message):
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{synth_dir / 'test.jsonl'}]", override])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_missing_exp_dir_and_test_sets(synth_exp, capsys):
    assert main([f"test_sets=[{synth_exp}/x.jsonl]"]) == 2
    assert "exp_dir: required" in capsys.readouterr().err
    assert main([f"exp_dir={synth_exp}"]) == 2
    assert "test_sets: required" in capsys.readouterr().err


def test_missing_checkpoint_names_the_ones_found(synth_exp, synth_dir, capsys):
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{synth_dir / 'test.jsonl'}]",
               "checkpoint=avg_10.pt"])
    assert rc == 1
    assert "'avg_10.pt' not found" in capsys.readouterr().err
