"""`asrkit decode` end to end: a tiny random model on a tiny synth set."""

import json
import logging

import pytest
import torch

from asrkit.bin.decode import main
from asrkit.scoring.compare import compare_experiments
from asrkit.scoring.kaldi_text import read_text

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
    dirs = {"ctc_greedy": "ctc_greedy", "ctc_prefix_beam": "ctc_prefix_beam-beam3-top_k3",
            "attention": "attention-beam3-length_penalty0-length_normfalse-max_len_ratio1",
            "attention_rescoring": "attention_rescoring-beam3-ctc_weight0.5-top_k3",
            "joint": "joint-beam3-ctc_weight0.5-length_penalty0-length_normfalse-max_len_ratio1"}
    for manifest in sets:
        set_name = manifest.stem
        shared = set()
        for method in methods:
            run = synth_exp / "decode" / "avg_2" / set_name / dirs[method]
            assert {p.name for p in run.iterdir()} == {"hyp.txt", "ref.txt", "wer.json",
                                                       "errors.txt"}
            summary = json.loads((run / "wer.json").read_text())
            assert WER_KEYS <= set(summary)
            assert summary["utts"] == 2 and summary["rtf"] > 0
            assert summary["normalize"] == {"case": "lower", "punctuation": "keep"}
            assert summary["checkpoint"] == "avg_2.pt" and summary["method"] == method
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
    ("bemm=3", "bemm: unknown key (did you mean beam?)"),
    ("methods=[ctc_greedy,beam]", ("methods: unknown method 'beam' (known: attention, "
                                   "attention_rescoring, ctc_greedy, ctc_prefix_beam, joint, "
                                   "transducer_beam, transducer_greedy, "
                                   "transducer_modified_beam, transducer_rescoring; a new one "
                                   "is conf/search/beam.yaml or +search.beam._target_=...)")),
    ("ctc_weight=1.5", "ctc_weight: must be <= 1, got 1.5"),
    ("normalize.case=title", "normalize.case: must be one of keep, lower, upper, got 'title'"),
    ("precision=int8", "precision: must be one of fp32, bf16, fp16, auto, got 'int8'"),
    ("search.joint.beem=4", "search.joint.beem: unknown key (did you mean beam?)"),
    ("search.joint.pre_beam=-1", "search.joint.pre_beam: must be > 0, got -1"),
    ("search.transducer_beam.beam=4", ("search.transducer_beam.beam: an option of "
                                       "transducer_beam, which is not among the methods used "
                                       "(ctc_greedy, ctc_prefix_beam, attention, "
                                       "attention_rescoring, joint)")),
    ("length_norm=true", ("length_norm: now an option of each search method that has it: "
                          "search.attention.length_norm, search.joint.length_norm")),
    ("rescoring_beam=20", ("rescoring_beam: now an option of each search method that has it: "
                           "search.attention_rescoring.beam")),
])
def test_bad_config_fails_at_once_naming_the_key(synth_exp, synth_dir, capsys, override, message):
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{synth_dir / 'test.jsonl'}]", override])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == f"asrkit decode: {message}\n"


def test_an_audio_file_as_a_test_set_points_to_transcribe(synth_exp, tmp_path, capsys):
    wav = tmp_path / "x.wav"
    wav.write_bytes(b"RIFF")
    assert main([f"exp_dir={synth_exp}", f"test_sets=[{wav}]"]) == 2
    assert "is an audio file, not a manifest; to transcribe audio files use `asrkit " \
           "transcribe" in capsys.readouterr().err


def test_missing_exp_dir_and_test_sets(synth_exp, capsys):
    assert main([f"test_sets=[{synth_exp}/x.jsonl]"]) == 2
    assert "exp_dir: required" in capsys.readouterr().err
    assert main([f"exp_dir={synth_exp}"]) == 2
    assert "test_sets: required" in capsys.readouterr().err


def test_missing_checkpoint_names_the_ones_found(synth_exp, synth_dir, capsys):
    rc = main([f"exp_dir={synth_exp}", f"test_sets=[{synth_dir / 'test.jsonl'}]",
               "checkpoint=avg_10.pt"])
    assert rc == 2  # a usage error, like every other one
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
    assert (out_dir / "avg_2" / "test" / "ctc_greedy" / "wer.json").is_file()
    assert not (exp_dir / "decode").exists() and not (exp_dir / "results.md").exists()
    assert find_runs(exp_dir) == []


def test_one_out_dir_for_two_experiments_is_refused(make_experiment, synth_dir, tmp_path,
                                                   capsys):
    """Results are keyed by checkpoint and settings, not by experiment: a second experiment
    decoded into the same out_dir would replace the first's results."""
    first = make_experiment(tmp_path / "a", synth_dir / "train.jsonl")
    second = make_experiment(tmp_path / "b", synth_dir / "train.jsonl", seed=1)
    common = ["checkpoint=avg_2.pt", "methods=[ctc_greedy]",
              f"test_sets=[{synth_dir / 'test.jsonl'}]", f"out_dir={tmp_path / 'out'}"]
    assert main([f"exp_dir={first}", *common]) == 0
    result = tmp_path / "out" / "avg_2" / "test" / "ctc_greedy"
    before = (result / "hyp.txt").read_text()
    assert json.loads((result / "wer.json").read_text())["exp_dir"] == str(first.resolve())
    capsys.readouterr()
    refused = (f"asrkit decode: out_dir: {tmp_path / 'out'} holds the results of another "
               f"experiment ({first.resolve()}, in avg_2/test/ctc_greedy); give each "
               "experiment an out_dir of its own\n")
    assert main([f"exp_dir={second}", *common]) == 2
    assert capsys.readouterr().err == refused
    assert (result / "hyp.txt").read_text() == before
    # also where it would write beside them (another checkpoint, method): one out_dir is
    # one experiment's
    other = [o for o in common if not o.startswith(("checkpoint=", "methods="))]
    assert main([f"exp_dir={second}", "checkpoint=checkpoints/epoch_2.pt",
                 "methods=[ctc_prefix_beam]", *other]) == 2
    assert capsys.readouterr().err == refused
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["avg_2"]
    assert main([f"exp_dir={first}", *common]) == 0  # its own results: decoded again
    # an experiment moved elsewhere still decodes into its own directories
    decoded = first / "decode"
    assert main([f"exp_dir={first}", *common[:-1]]) == 0 and decoded.is_dir()
    assert main([f"exp_dir={first}", *common[:-1], f"out_dir={first / 'decode_b'}"]) == 0
    moved = first.rename(tmp_path / "a_moved")
    assert main([f"exp_dir={moved}", *common[:-1]]) == 0
    assert main([f"exp_dir={moved}", *common[:-1], f"out_dir={moved / 'decode_b'}"]) == 0


def test_results_of_a_checkpoint_written_again_are_left_out(make_experiment, synth_dir,
                                                            tmp_path, caplog):
    """`asrkit average` rewrites avg_N.pt in place: results decoded with the earlier one must
    not be shown beside the new one's epochs and size (the checkpoint's hash file tells)."""
    from asrkit.checkpoint_io import atomic_save
    from asrkit.scoring.decode_dir import find_runs

    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    average = torch.load(exp_dir / "avg_2.pt", weights_only=False)
    atomic_save(average, exp_dir / "avg_2.pt")  # with its hash file, as average writes it
    assert main([f"exp_dir={exp_dir}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                 f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0
    assert len(find_runs(exp_dir)) == 1
    average["averaged_from"] = ["epoch_3.pt", "epoch_4.pt"]  # averaged again, later epochs
    atomic_save(average, exp_dir / "avg_2.pt")
    with caplog.at_level(logging.WARNING, logger="asrkit.scoring.decode_dir"):
        assert find_runs(exp_dir) == []
    assert "decoded with an earlier avg_2.pt" in caplog.text
    with pytest.raises(ValueError, match=r"^exp: no current decode results \(those found were "
                                         r"decoded with a checkpoint written again since: "
                                         r"decode again\)$"):
        compare_experiments([exp_dir])
    # beside an experiment with current results: its table, a note, each warning once
    # (compare failed outright, and printed the warning twice)
    other = make_experiment(tmp_path / "other", synth_dir / "train.jsonl", seed=1)
    assert main([f"exp_dir={other}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                 f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        comparison = compare_experiments([other, exp_dir], sets=["test"],
                                         methods=["ctc_greedy"])
    assert [row.info.name for row in comparison.rows] == ["other"]
    assert "exp: no current decode results (those found were decoded with a checkpoint " \
        "written again since: decode again)" in comparison.notes
    assert caplog.text.count("decoded with an earlier avg_2.pt") == 1


def test_decodes_with_other_settings_or_checkpoints_keep_both(make_experiment, synth_dir,
                                                              tmp_path, capsys):
    """Each decode is keyed by checkpoint and search settings: nothing overwrites another,
    results.md lists them all, and compare notes that the rows it pairs differ in beam."""
    from asrkit.scoring.compare_format import format_markdown

    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    test = synth_dir / "test.jsonl"
    for extra in (["beam=2"], ["beam=4"], ["beam=2", "checkpoint=checkpoints/epoch_3.pt"]):
        assert main([f"exp_dir={exp_dir}", "checkpoint=avg_2.pt", "methods=[attention_rescoring]",
                     f"test_sets=[{test}]", *extra]) == 0
    found = sorted(str(p.relative_to(exp_dir / "decode"))
                   for p in (exp_dir / "decode").glob("*/*/*"))
    assert found == ["avg_2/test/attention_rescoring-beam2-ctc_weight0.3-top_k2",
                     "avg_2/test/attention_rescoring-beam4-ctc_weight0.3-top_k4",
                     "epoch_3/test/attention_rescoring-beam2-ctc_weight0.3-top_k2"]
    results = (exp_dir / "results.md").read_text()
    for label in ("attention_rescoring (avg_2, beam 2, top_k 2)",
                  "attention_rescoring (avg_2, beam 4, top_k 4)",
                  "attention_rescoring (epoch_3, beam 2, top_k 2)"):
        assert f"| {label} |" in results
    comparison = compare_experiments([exp_dir])
    assert len(comparison.rows) == 3 and len(comparison.pairs) == 3
    table = format_markdown(comparison)
    assert "were decoded with different search settings (beam 2 vs 4, top_k 2 vs 4)" in table
    capsys.readouterr()


def test_a_bf16_decode_is_kept_beside_the_fp32_one(make_experiment, synth_dir, tmp_path,
                                                  capsys, monkeypatch):
    from asrkit.decoding import run

    decoded_in = []

    def decode_utterances(*args, **kwargs):
        decoded_in.append(args[-1].name)  # the DecodePrecision, last (test_precision.py
        return original(*args, **kwargs)  # shows what decode_utterances does with it)

    original = run.decode_utterances
    monkeypatch.setattr(run, "decode_utterances", decode_utterances)
    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    for extra in ([], ["precision=bf16"]):
        assert main([f"exp_dir={exp_dir}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                     f"test_sets=[{synth_dir / 'test.jsonl'}]", *extra]) == 0
    assert decoded_in == ["fp32", "bf16"]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(");")[0].rsplit("(", 1)[1] for line in lines
            if line.startswith("decoding with")] == ["ctc_greedy", "ctc_greedy; precision bf16"]
    runs = exp_dir / "decode" / "avg_2" / "test"
    assert sorted(p.name for p in runs.iterdir()) == ["ctc_greedy", "ctc_greedy-precisionbf16"]
    assert json.loads((runs / "ctc_greedy" / "wer.json").read_text())["decode"] == {}
    summary = json.loads((runs / "ctc_greedy-precisionbf16" / "wer.json").read_text())
    assert summary["decode"] == {"precision": "bf16"}
    results = (exp_dir / "results.md").read_text()
    assert "| ctc_greedy (precision bf16) |" in results
    assert "| ctc_greedy (precision fp32) |" in results  # the implicit default, named
    comparison = compare_experiments([exp_dir])  # the two decodes, paired with a note
    assert [(p.a, p.b) for p in comparison.pairs] == [(
        f"{exp_dir.name} (precision bf16)", f"{exp_dir.name} (precision fp32)")]
    assert comparison.notes == [(
        f"test/ctc_greedy: {exp_dir.name} (precision bf16) and {exp_dir.name} (precision "
        "fp32) were decoded with different search settings (precision bf16 vs fp32); their "
        "difference is not the models' alone")]


def test_the_default_checkpoint_is_the_experiments_average(make_experiment, synth_dir, tmp_path,
                                                           capsys):
    from asrkit.experiment_dir import ExperimentDir

    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    args = [f"exp_dir={exp_dir}", "methods=[ctc_greedy]", f"test_sets=[{synth_dir / 'test.jsonl'}]"]
    assert main(args) == 2  # no averaged model recorded and no checkpoints/last.pt
    assert "has no averaged model and no checkpoints/last.pt" in capsys.readouterr().err
    ExperimentDir(exp_dir).record_average(exp_dir / "avg_2.pt", ["epoch_2.pt", "epoch_3.pt"])
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"decoding with {exp_dir / 'avg_2.pt'}")
    assert (exp_dir / "decode" / "avg_2" / "test" / "ctc_greedy" / "wer.json").is_file()


NEW_METHOD = '''
from dataclasses import dataclass

from asrkit.arg_types import PositiveInt
from asrkit.decoding.ctc_greedy import ctc_greedy_search
from asrkit.decoding.hypothesis import Hypothesis
from asrkit.decoding.search import SearchMethod


@dataclass(frozen=True)
class FirstTokens(SearchMethod):
    """CTC greedy, cut to the first ``keep`` tokens."""

    keep: PositiveInt = 1
    needs_ctc = True

    def __call__(self, model, enc, enc_lens, ctc_log_probs):
        best = ctc_greedy_search(ctc_log_probs, enc_lens, model.blank_id)
        return [[Hypothesis(h[0].tokens[: self.keep], h[0].score)] for h in best]
'''


def test_a_new_search_method_is_one_file_plus_its_config(make_experiment, synth_dir, tmp_path,
                                                         monkeypatch, capsys):
    """Written in a temporary directory; nothing in asrkit or conf/ is edited."""
    code, conf = tmp_path / "code", tmp_path / "conf"
    code.mkdir()
    (code / "first_tokens.py").write_text(NEW_METHOD)
    (conf / "search").mkdir(parents=True)
    (conf / "search" / "first_tokens.yaml").write_text(
        "_target_: first_tokens.FirstTokens\nkeep: 2\n")
    monkeypatch.syspath_prepend(str(code))
    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    assert main(["--config-dir", str(conf), f"exp_dir={exp_dir}", "checkpoint=avg_2.pt",
                 "methods=[ctc_greedy,first_tokens]", "search.first_tokens.keep=3",
                 f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0
    greedy = read_text(exp_dir / "decode/avg_2/test/ctc_greedy/hyp.txt")
    first = read_text(exp_dir / "decode/avg_2/test/first_tokens-keep3/hyp.txt")
    from asrkit.text.registry import load_tokenizer

    tokenizer = load_tokenizer(exp_dir / "tokenizer")
    for uid, text in greedy.items():
        assert first[uid] == tokenizer.decode(tokenizer.encode(text)[:3])
    assert "first_tokens" in capsys.readouterr().out


def test_decode_input_is_checked_before_the_results_it_would_replace(
        make_experiment, synth_dir, tmp_path, capsys, monkeypatch):
    """A checkpoint name is looked up in exp_dir before the current directory; one from
    outside the experiment keeps its results apart from the experiment's own of that
    name; another set of the same name, a device this machine lacks, a file as out_dir and
    out-of-range rescoring weights are exit 2 before anything is decoded."""
    import shutil

    exp_dir = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    other = make_experiment(tmp_path / "other", synth_dir / "train.jsonl", seed=5)
    test = synth_dir / "test.jsonl"
    monkeypatch.chdir(other)  # holds an avg_2.pt of its own
    common = [f"exp_dir={exp_dir}", "methods=[ctc_greedy]", f"test_sets=[{test}]"]
    assert main([*common, "checkpoint=avg_2.pt"]) == 0
    wer = json.loads((exp_dir / "decode/avg_2/test/ctc_greedy/wer.json").read_text())
    assert wer["checkpoint"] == "avg_2.pt"
    assert main([*common, f"checkpoint={other / 'avg_2.pt'}"]) == 0
    outside = sorted(p.name for p in (exp_dir / "decode").iterdir())
    assert len(outside) == 2 and outside[0] == "avg_2" and outside[1].startswith("avg_2-")
    capsys.readouterr()
    renamed = tmp_path / "elsewhere" / "test.jsonl"
    renamed.parent.mkdir()
    shutil.copy(synth_dir / "test_unseen.jsonl", renamed)
    before = (exp_dir / "decode/avg_2/test/ctc_greedy/ref.txt").read_text()
    assert main([f"exp_dir={exp_dir}", "methods=[ctc_greedy]", f"test_sets=[{renamed}]",
                 "checkpoint=avg_2.pt"]) == 2
    assert capsys.readouterr().err == (
        f"asrkit decode: test_sets: {renamed} would replace the results in "
        f"{exp_dir / 'decode/avg_2/test/ctc_greedy'}, which are of other utterances (another "
        f"set of the same name); rename the manifest, set out_dir=..., or remove that "
        f"directory\n")
    assert (exp_dir / "decode/avg_2/test/ctc_greedy/ref.txt").read_text() == before
    (tmp_path / "afile").write_text("")
    for extra, message in ((["device=cuda:7"], "device: cuda:7: this machine has"),
                           (["device=gpu"], "device: gpu: not a device"),
                           ([f"out_dir={tmp_path / 'afile'}"], "is a file, not a directory"),
                           ([f"out_dir={tmp_path / 'afile' / 'sub'}"],
                            (f"out_dir: {tmp_path / 'afile' / 'sub'} would be inside "
                             f"{tmp_path / 'afile'}, which is a file")),
                           (["methods=[transducer_rescoring]", "ctc_weight=0.6"],
                            ("search.transducer_rescoring: transducer_weight + ctc_weight must "
                            "be <= 1, got 1.1"))):
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("asrkit decode: ") and message in err and err.count("\n") == 1


def test_a_malformed_yaml_in_a_config_dir_is_named(synth_exp, synth_dir, tmp_path, capsys):
    broken = tmp_path / "conf" / "search" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(": : bad yaml [\n")
    assert main(["--config-dir", str(tmp_path / "conf"), f"exp_dir={synth_exp}",
                 f"test_sets=[{synth_dir / 'test.jsonl'}]", "methods=[broken]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit decode: {broken}: not valid YAML (") and err.count("\n") == 1


def test_every_moved_key_names_a_key_that_exists():
    """What the message for a former top-level key suggests must itself be accepted."""
    import yaml

    from asrkit.config import config_dir
    from asrkit.decoding.plan import MOVED_KEYS

    for old, new_keys in MOVED_KEYS.items():
        for key in new_keys:
            _, method, option = key.split(".")
            section = yaml.safe_load((config_dir() / "search" / f"{method}.yaml").read_text())
            assert option in section, (old, key)
