"""`asrkit compare` on the results a user meets besides two clean experiments: other
normalisations, sets without words, the old layout beside the new, another line order,
names Markdown would split, filters that find nothing, outputs onto its inputs."""

import csv
import io
import itertools
import json
import random

import numpy as np
import pytest

from asrkit.bin.compare import main
from asrkit.scoring.compare import compare_experiments
from asrkit.scoring.compare_format import format_csv, format_markdown, plot_figure
from asrkit.scoring.decode_dir import result_dir, write_decode_result
from asrkit.scoring.normalize import TextNormalizer
from asrkit.scoring.results_md import format_results_md

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "house", "big", "red"]


def _refs(n=60, seed=0):
    rng = random.Random(seed)
    return {f"utt{i:03d}": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 9)))
            for i in range(n)}


def _noisy(refs, rate, seed):
    rng = random.Random(seed)
    return {u: " ".join(w if rng.random() > rate else rng.choice(WORDS) for w in t.split())
            for u, t in refs.items()}


def _result(exp, refs, hyps, method="attention", set_name="test", settings=None,
            checkpoint="avg_2.pt", normalizer=None, decode_root=None):
    """One decode result as `asrkit decode` writes it (no checkpoint on disk: the
    experiment's size and cost are then unknown, which compare shows as –)."""
    settings = settings or {}
    out = result_dir(decode_root or exp / "decode", checkpoint, set_name, method, settings)
    write_decode_result(out, refs, hyps, normalizer or TextNormalizer(), rtf=0.05,
                        extra={"checkpoint": checkpoint, "set": set_name, "method": method,
                               "decode": settings})
    return out


def _pair_table_row(text, a, b):
    return next(line for line in text.splitlines() if line.startswith("| test |")
                and f"| {a} | {b} |" in line)


def test_results_scored_with_other_normalisations_are_not_paired(tmp_path):
    """Same hypotheses; B scored lower-cased without punctuation: a 'significant' gain
    that is only the normalisation must not be reported."""
    refs = {u: t.capitalize() + "." for u, t in _refs().items()}
    hyps = _noisy(refs, 0.1, 1)
    _result(tmp_path / "A", refs, hyps)
    _result(tmp_path / "B", refs, hyps,
            normalizer=TextNormalizer(case="lower", punctuation="remove"))
    comparison = compare_experiments([tmp_path / "A", tmp_path / "B"])
    assert comparison.pairs == []
    assert comparison.not_paired == [
        ("test/attention: A and B were scored with different normalisations (none vs case "
         "lower, punctuation removed); not compared")]


def test_a_set_without_reference_words_is_not_paired_and_wordless_draws_are_left_out(
        tmp_path):
    empty = {f"utt{i}": "" for i in range(10)}
    _result(tmp_path / "A", empty, {u: "" for u in empty})
    _result(tmp_path / "B", empty, {u: "cat" for u in empty})
    comparison = compare_experiments([tmp_path / "A", tmp_path / "B"])
    assert comparison.pairs == []
    assert comparison.not_paired == ["test: no reference words, so no WER to compare"]
    # two of twenty utterances have words: a draw of only wordless ones has no WER and
    # is left out (before, it counted as errors / 1 word: an interval of −2000 points)
    refs = {f"utt{i:02d}": ("cat sat" if i < 2 else "") for i in range(20)}
    _result(tmp_path / "C", refs, {u: "the dog" for u in refs})
    _result(tmp_path / "D", refs, dict(refs))
    (pair,) = compare_experiments([tmp_path / "C", tmp_path / "D"],
                                  num_samples=3000).pairs
    errors_c = np.full(20, 2)  # 2 substitutions / 2 insertions each
    words = np.array([2 if i < 2 else 0 for i in range(20)])
    draw, deltas = np.random.default_rng(5), []
    for _ in range(6000):
        idx = draw.integers(0, 20, size=20)
        if words[idx].sum():
            deltas.append(-100 * errors_c[idx].sum() / words[idx].sum())
    low, high = np.quantile(deltas, [0.025, 0.975])
    assert pair.result.delta == -1000.0
    assert pair.result.ci_low == pytest.approx(low, rel=0.15)
    assert pair.result.ci_high == pytest.approx(high, rel=0.15)


def test_an_old_layout_result_does_not_replace_todays_of_the_same_decode(tmp_path, caplog):
    refs = _refs()
    new = _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1))
    old = tmp_path / "A" / "decode" / "test" / "attention"  # the layout before
    write_decode_result(old, refs, _noisy(refs, 0.5, 2), TextNormalizer(),
                        extra={"checkpoint": "avg_2.pt", "set": "test",
                               "method": "attention", "decode": {}})
    (row,) = compare_experiments([tmp_path / "A"]).rows
    assert row.runs["test"].path == new
    assert "an older result of the same checkpoint and settings" in caplog.text
    # an old result of another checkpoint is still read
    summary = json.loads((old / "wer.json").read_text())
    (old / "wer.json").write_text(json.dumps({**summary, "checkpoint": "avg_5.pt"}))
    rows = compare_experiments([tmp_path / "A"]).rows
    assert sorted(r.runs["test"].path.name for r in rows) == ["attention", "attention"]
    assert len({r.runs["test"].path for r in rows}) == 2


def test_a_checkpoint_is_found_by_the_name_decode_took(tmp_path):
    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), checkpoint="checkpoints/epoch_4.pt")
    _result(tmp_path / "A", refs, _noisy(refs, 0.2, 1))
    for name in ("epoch_4.pt", "epoch_4", "checkpoints/epoch_4.pt"):
        (row,) = compare_experiments([tmp_path / "A"], checkpoint=name).rows
        assert row.checkpoint == "checkpoints/epoch_4.pt"


def test_a_checkpoint_outside_the_experiment_is_found_by_the_path_decode_took(tmp_path,
                                                                               monkeypatch):
    """decode records one outside the experiment by its absolute path; compare takes the
    path as it was given to decode, from the same directory, too."""
    refs = _refs()
    outside = tmp_path / "elsewhere" / "outside.pt"
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), checkpoint=str(outside))
    _result(tmp_path / "A", refs, _noisy(refs, 0.2, 1))
    monkeypatch.chdir(tmp_path)
    for name in (str(outside), "elsewhere/outside.pt", "./elsewhere/outside.pt"):
        (row,) = compare_experiments([tmp_path / "A"], checkpoint=name).rows
        assert row.checkpoint == str(outside)
    with pytest.raises(ValueError):
        compare_experiments([tmp_path / "A"], checkpoint="outside.pt")  # another directory's


def test_the_plot_puts_rows_decoded_alike_side_by_side(tmp_path):
    """A decoded at beam 10 and 20, B at beam 10: B's bar belongs beside A's beam-10 bar."""
    import matplotlib.pyplot as plt

    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), settings={"beam": 10})
    _result(tmp_path / "A", refs, _noisy(refs, 0.2, 2), settings={"beam": 20})
    _result(tmp_path / "B", refs, _noisy(refs, 0.3, 3), settings={"beam": 10})
    comparison = compare_experiments([tmp_path / "A", tmp_path / "B"])
    assert comparison.groups == ["attention (beam 10)", "attention (beam 20)"]
    fig = plot_figure(comparison)
    try:
        ax = fig.axes[0]
        bars = sorted((round(p.get_x() + p.get_width() / 2, 3), round(p.get_height(), 2))
                      for p in ax.patches)
        wer = {(r.info.name, r.settings["beam"]): round(comparison.value(r, "test"), 2)
               for r in comparison.rows}
        assert bars == [(-0.2, wer["A", 10]), (0.2, wer["B", 10]), (0.8, wer["A", 20])]
        assert [(t.get_text(), t.get_position()[0]) for t in ax.texts] == [("n/a", 1.2)]
    finally:
        plt.close(fig)


def test_the_tables_show_unrounded_rates_and_escape_a_pipe(tmp_path):
    refs = _refs(150, seed=4)
    _result(tmp_path / "conf|v2", refs, _noisy(refs, 0.3, 1))
    _result(tmp_path / "B", refs, _noisy(refs, 0.2, 2))
    comparison = compare_experiments([tmp_path / "conf|v2", tmp_path / "B"])
    run = comparison.rows[0].runs["test"]
    s = run.summary
    exact = 100 * (s["sub"] + s["del"] + s["ins"]) / s["ref_words"]
    assert comparison.value(comparison.rows[0], "test") == exact  # not wer.json's 4 decimals
    table = format_markdown(comparison)
    result_line = next(line for line in table.splitlines() if line.startswith("| conf"))
    assert result_line.startswith(f"| conf\\|v2 | – | – | – | attention | {exact:.2f} |")
    assert _pair_table_row(table, "conf\\|v2", "B").count(" | ") == 9  # ten cells
    rows = list(csv.DictReader(io.StringIO(format_csv(comparison))))
    assert float(rows[0]["wer"]) == exact and rows[0]["normalize"] == "none"


def test_the_pairing_does_not_depend_on_line_order_or_argument_order(tmp_path):
    refs = _refs(120, seed=6)
    hyps_b = _noisy(refs, 0.15, 2)
    _result(tmp_path / "A", refs, _noisy(refs, 0.25, 1))
    shuffled = list(refs)
    random.Random(0).shuffle(shuffled)
    _result(tmp_path / "B", {u: refs[u] for u in shuffled}, {u: hyps_b[u] for u in shuffled})
    ab, = compare_experiments([tmp_path / "A", tmp_path / "B"]).pairs
    ba, = compare_experiments([tmp_path / "B", tmp_path / "A"]).pairs
    assert (ba.result.ci_low, ba.result.ci_high) == pytest.approx(
        (-ab.result.ci_high, -ab.result.ci_low))
    assert ba.result.delta == pytest.approx(-ab.result.delta)


def test_csv_prints_the_notes_on_stderr(tmp_path, capsys):
    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), settings={"beam": 10})
    _result(tmp_path / "B", refs, _noisy(refs, 0.2, 2), settings={"beam": 20})
    out = tmp_path / "pairs.csv"
    assert main([str(tmp_path / "A"), str(tmp_path / "B"), "--format", "csv",
                 "--pairs-csv", str(out)]) == 0
    err = capsys.readouterr().err
    assert err == ("Note: test/attention: A and B were decoded with "
                   "different search settings (beam 10 vs 20); their difference is not the "
                   "models' alone.\n")


def test_filters_that_find_nothing_say_so(tmp_path, capsys):
    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1))
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), method="ctc_greedy")
    _result(tmp_path / "B", refs, _noisy(refs, 0.2, 2))
    assert main([str(tmp_path / "A"), str(tmp_path / "B"), "--sets", "test", "tset",
                 "--methods", "ctc_greedy", "atention"]) == 0
    out = capsys.readouterr().out
    assert "| A | – | – | – | ctc_greedy | " in out
    notes = [line for line in out.splitlines() if line.startswith("Note:")]
    assert notes == [
        "Note: B: no decode results for the sets/methods/checkpoint asked.",
        "Note: no experiment has results for the set 'tset' (found: test).",
        # every method the experiments have, not only those asked for
        ("Note: no experiment has results for the method 'atention' (found: attention, "
         "ctc_greedy).")]
    assert main([str(tmp_path / "A"), str(tmp_path / "B"), "--methods", "joint"]) == 2
    assert capsys.readouterr().err == (
        f"asrkit compare: {tmp_path / 'A'}, {tmp_path / 'B'}: no decode results for the "
        f"method 'joint' (found: sets test; methods attention, ctc_greedy; checkpoints "
        f"avg_2.pt)\n")
    assert main([str(tmp_path / "A"), "--sets", "tset", "--checkpoint", "last.pt"]) == 2
    assert "no decode results for the set 'tset' and the checkpoint 'last.pt' (found: " in \
        capsys.readouterr().err


def test_outputs_onto_the_results_compared_are_refused(tmp_path, capsys):
    refs = _refs()
    run = _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1))
    _result(tmp_path / "B", refs, _noisy(refs, 0.2, 2))
    before = (run / "wer.json").read_bytes()
    for option, name in (("--pairs-csv", "wer.json"), ("--plot", "hyp.txt")):
        assert main([str(tmp_path / "A"), str(tmp_path / "B"), option, str(run / name)]) == 2
        assert capsys.readouterr().err == (f"asrkit compare: {option} {run / name}: is one "
                                           "of the decode results compared; write it "
                                           "elsewhere\n")
    assert (run / "wer.json").read_bytes() == before


def test_a_count_that_is_not_a_number_is_named_and_results_md_skips_the_bootstrap(tmp_path):
    refs = _refs()
    run = _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1))
    other = _result(tmp_path / "A", refs, _noisy(refs, 0.1, 2), settings={"beam": 20})
    # a result whose hypotheses name an utterance the references lack: the bootstrap
    # cannot rescore it, but the experiment's own table needs no bootstrap
    (other / "hyp.txt").write_text((other / "hyp.txt").read_text() + "zzz extra\n")
    assert "| attention (beam 20) |" in format_results_md(tmp_path / "A")
    summary = json.loads((run / "wer.json").read_text())
    (run / "wer.json").write_text(json.dumps({**summary, "sub": "12"}))
    with pytest.raises(ValueError, match=rf"^{run / 'wer.json'}: sub is not a number \('12'\)$"):
        format_results_md(tmp_path / "A")


def test_a_chunked_or_bf16_decode_alone_is_named_so(tmp_path):
    """Chunked (streaming) context and low precision are the decode's conditions: a row
    decoded so is labelled with them even when it is its method's only row (a chunk-16
    rescoring must not read as a full-context one); plain rows stay plain."""
    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), method="attention_rescoring",
            settings={"beam": 10, "chunk_size": 16, "left_chunks": None})
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 2), method="ctc_greedy",
            settings={"precision": "bf16"})
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 3), method="attention",
            settings={"beam": 10})
    comparison = compare_experiments([tmp_path / "A"])
    assert sorted(row.label for row in comparison.rows) == [
        "attention", "attention_rescoring (chunk_size 16, left_chunks None)",
        "ctc_greedy (precision bf16)"]
    assert "| attention_rescoring (chunk_size 16, left_chunks None) |" in \
        format_results_md(tmp_path / "A")


def test_rows_of_one_experiment_on_other_references_are_named_apart(tmp_path):
    refs = _refs()
    _result(tmp_path / "A", refs, _noisy(refs, 0.1, 1), checkpoint="epoch_1.pt")
    other = {uid: text + " more" for uid, text in refs.items()}  # same ids, other words
    _result(tmp_path / "A", other, _noisy(other, 0.1, 2), checkpoint="epoch_2.pt")
    comparison = compare_experiments([tmp_path / "A"])
    assert comparison.pairs == []
    (note,) = [n for n in comparison.not_paired if "different references" in n]
    assert note.startswith("test: A (epoch_1) and A (epoch_2) were scored on different refer")


def test_long_group_labels_of_the_plot_do_not_overlap(tmp_path):
    refs = _refs()
    for i, beam in enumerate((10, 20, 30)):
        _result(tmp_path / "A", refs, _noisy(refs, 0.1, i), method="attention_rescoring",
                checkpoint=f"epoch_{i}.pt", settings={"beam": beam, "ctc_weight": 0.5})
    comparison = compare_experiments([tmp_path / "A"])
    assert len(comparison.groups) == 3
    fig = plot_figure(comparison)
    try:
        fig.canvas.draw()
        boxes = [label.get_window_extent() for label in fig.axes[0].get_xticklabels()]
        assert len(boxes) == 3
        for left, right in itertools.pairwise(boxes):
            assert left.x1 < right.x0  # each label ends before the next begins
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
