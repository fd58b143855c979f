"""`asrkit decode` end to end: a tiny random model on a tiny synth set."""

import json

import pytest

from asrkit.bin.decode import main
from asrkit.scoring.wer import read_text

WER_KEYS = {"wer", "cer", "sub", "del", "ins", "ref_words", "utts", "rtf"}


def _errors_file(text: str) -> tuple[list[str], list[list[str]]]:
    """errors.txt -> (its '# ' header lines, the alignment blocks as lists of lines)."""
    header, _, body = text.partition("\n\n")
    return header.splitlines(), [block.splitlines() for block in body.strip().split("\n\n")]


def _check_errors_file(text: str, summary: dict, refs: dict, hyps: dict) -> None:
    """The sclite-pralign-style file: the WER line and normalisation, then per utterance
    in manifest order its id, Scores (#C #S #D #I) summing to wer.json's counts, and the
    REF/HYP words (*** filling gaps) of the lower-cased texts."""
    header, blocks = _errors_file(text)
    errors = summary["sub"] + summary["del"] + summary["ins"]
    assert header[0] == (f"# WER {summary['wer']:.2f} % [ {errors} / {summary['ref_words']}, "
                         f"{summary['sub']} sub, {summary['del']} del, {summary['ins']} ins ] "
                         f"{summary['utts']} utterances")
    assert "# normalisation: case lower" in header and "# alignments by words" in header
    assert [block[0] for block in blocks] == [f"id: {uid}" for uid in refs]
    totals = [0, 0, 0, 0]
    for block, uid in zip(blocks, refs):
        scores, ref, hyp, marks = block[1:]
        assert scores.startswith("Scores: (#C #S #D #I) ")
        counts = [int(n) for n in scores.split()[-4:]]
        totals = [t + n for t, n in zip(totals, counts)]
        assert ref.startswith("REF: ") and hyp.startswith("HYP: ") and marks.startswith("Eval:")
        words = [[w for w in line.split()[1:] if set(w) != {"*"}] for line in (ref, hyp)]
        assert words == [refs[uid].lower().split(), hyps[uid].lower().split()]
        assert counts[0] + counts[1] + counts[2] == len(words[0])
    assert totals[1:] == [summary["sub"], summary["del"], summary["ins"]]


def test_decode_writes_every_set_and_method(synth_exp, synth_dir, capsys):
    sets = [synth_dir / "test.jsonl", synth_dir / "test_unseen.jsonl"]
    rc = main([f"exp_dir={synth_exp}", "checkpoint=avg_2.pt",
               f"test_sets=[{','.join(map(str, sets))}]", "beam=3", "ctc_weight=0.5",
               "normalize.case=lower", "batch_size=2"])
    assert rc == 0
    out = capsys.readouterr().out
    methods = ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint"]
    assert out.splitlines()[0] == (f"decoding with {synth_exp / 'avg_2.pt'} "
                                   f"({', '.join(methods)}); normalisation: case lower")
    for manifest in sets:
        set_name = manifest.stem
        shared = set()
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
            _check_errors_file((run / "errors.txt").read_text(), summary, refs, hyps)
            assert f"{set_name:<14} {method:<20} WER" in out
            # every method's RTF includes the features + encoder + CTC head run once for all
            assert summary["rtf"] >= summary["rtf_shared"] > 0
            shared.add(summary["rtf_shared"])
        assert len(shared) == 1
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


def test_empty_or_malformed_test_set_fails_before_decoding(synth_exp, synth_dir, tmp_path,
                                                           capsys):
    """Checked with the config, before the model is loaded or any set decoded: an empty
    set would otherwise be scored 0.00 % WER over 0 utterances in results.md."""
    good = synth_dir / "test.jsonl"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{good},{empty}]", "methods=[ctc_greedy]"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert f"test_sets: {empty} has no utterances" in captured.err
    # a zero duration is refused by manifest validation (asrkit.data.manifest), naming the line
    records = [json.loads(line) for line in good.read_text().splitlines()[:2]]
    records[1]["duration"] = 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in records))
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{good},{bad}]", "methods=[ctc_greedy]"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert f"{bad}:2: key 'duration' must be > 0" in captured.err


def test_out_dir_leaves_the_experiment_alone(make_experiment, synth_dir, tmp_path, capsys):
    """With out_dir the results go there; results.md is not written and compare (which
    reads exp_dir/decode) finds nothing."""
    from asrkit.scoring.decode_dir import find_runs

    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    out_dir = tmp_path / "elsewhere"
    rc = main([f"exp_dir={exp_dir}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
               f"test_sets=[{synth_dir / 'test.jsonl'}]", f"out_dir={out_dir}"])
    assert rc == 0
    assert "results.md not refreshed" in capsys.readouterr().out
    assert (out_dir / "test" / "ctc_greedy" / "wer.json").is_file()
    assert not (exp_dir / "decode").exists() and not (exp_dir / "results.md").exists()
    assert find_runs(exp_dir) == []
