import csv
import io
import random

import pytest
import torch

from asrkit.bin.compare import main
from asrkit.config import compose_train_config
from asrkit.models.build import build_model
from asrkit.models.param_count import count_parameters
from asrkit.scoring.compare import compare_experiments
from asrkit.scoring.compare_format import format_csv, format_markdown, plot, plot_figure
from asrkit.scoring.decode_dir import result_dir, write_decode_result
from asrkit.scoring.normalize import TextNormalizer
from asrkit.scoring.results_md import refresh_results_md

TINY = ["encoder=transformer", "encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
        "encoder.num_layers=1", "decoder.d_model=32", "decoder.num_heads=2",
        "decoder.ffn_dim=64", "decoder.num_layers=1", "vocab_size=20"]
WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "house", "big", "small", "red"]


def _fake_experiment(root, name, error_rate, sets, seed, layers=1):
    """An experiment directory as train + decode leave it: checkpoints, avg_2.pt, and
    decode/avg_2/<set>/<method>/ with hypotheses of about ``error_rate`` word errors."""
    exp = root / name
    config = compose_train_config([*TINY, f"encoder.num_layers={layers}"])
    model = build_model(config)
    (exp / "checkpoints").mkdir(parents=True)
    for epoch, hours in ((9, 1.8), (10, 2.0)):
        torch.save({"model": model.state_dict(), "config": config, "epoch": epoch,
                    "metrics": {"train_hours": hours}}, exp / "checkpoints" / f"epoch_{epoch}.pt")
    torch.save({"model": model.state_dict(), "config": config,
                "averaged_from": ["epoch_9.pt", "epoch_10.pt"]}, exp / "avg_2.pt")
    rng = random.Random(seed)
    refs = {f"utt{i:03d}": " ".join(random.Random(i).choice(WORDS) for _ in range(8))
            for i in range(150)}
    for set_name in sets:
        for method in ("ctc_greedy", "attention"):
            hyps = {uid: " ".join(w if rng.random() > error_rate else rng.choice(WORDS)
                                  for w in text.split()) for uid, text in refs.items()}
            write_decode_result(result_dir(exp / "decode", "avg_2.pt", set_name, method, {}),
                                refs, hyps,
                                TextNormalizer(), rtf=0.05,
                                extra={"checkpoint": "avg_2.pt", "set": set_name,
                                       "method": method})
    return exp, count_parameters(model)["total"]


@pytest.fixture(scope="module")
def experiments(tmp_path_factory):
    root = tmp_path_factory.mktemp("exps")
    a, params_a = _fake_experiment(root, "baseline", 0.35, ["test", "dev"], seed=0)
    b, params_b = _fake_experiment(root, "better", 0.10, ["test"], seed=1, layers=2)
    return a, b, params_a, params_b


def test_table_has_size_cost_and_wer_per_set_and_method(experiments):
    a, b, params_a, params_b = experiments
    comparison = compare_experiments([a, b])
    info = {e.name: e for e in comparison.experiments}
    assert (info["baseline"].params, info["better"].params) == (params_a, params_b)
    assert (info["baseline"].epochs, info["baseline"].train_hours) == (10, 2.0)
    assert comparison.sets == ["dev", "test"]
    assert comparison.methods == ["ctc_greedy", "attention"]
    table = format_markdown(comparison)
    assert "| experiment | params | epochs | train h | method | dev | test |" in table
    assert f"| baseline | {params_a / 1e3:.1f}k | 10 | 2.00 | ctc_greedy |" in table
    better_row = next(line for line in table.splitlines() if line.startswith("| better |"))
    assert "| – |" in better_row  # not decoded on dev
    assert "Text normalisation: none." in table


def test_pairs_on_common_sets_have_a_significant_ci(experiments):
    a, b, *_ = experiments
    comparison = compare_experiments([a, b])
    pairs = {(p.set_name, p.method): p for p in comparison.pairs}
    assert set(pairs) == {("test", "ctc_greedy"), ("test", "attention")}  # dev: A only
    for pair in pairs.values():
        r = pair.result
        assert (pair.a, pair.b, pair.utterances) == ("baseline", "better", 150)
        assert r.ci_low <= r.delta <= r.ci_high < 0 and r.significant
        wer_b = next(run.summary["wer"] for info, run in comparison.runs
                     if info.name == "better" and run.set_name == "test"
                     and run.method == pair.method)
        assert r.wer_b == pytest.approx(wer_b, abs=1e-3)
    table = format_markdown(comparison)
    assert "| test | ctc_greedy | baseline | better |" in table and "| yes |" in table


def test_csv_and_plot(experiments, tmp_path):
    a, b, *_ = experiments
    comparison = compare_experiments([a, b], methods=["attention"])
    rows = list(csv.DictReader(io.StringIO(format_csv(comparison))))
    assert [(r["experiment"], r["set"], r["method"]) for r in rows] == [
        ("baseline", "dev", "attention"), ("baseline", "test", "attention"),
        ("better", "test", "attention")]
    assert float(rows[0]["wer"]) > float(rows[2]["wer"]) and rows[0]["epochs"] == "10"
    path = plot(comparison, tmp_path / "plots" / "wer.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line(experiments, tmp_path, capsys):
    a, b, *_ = experiments
    assert main([str(a), str(b), "--sets", "test", "--plot", str(tmp_path / "w.png"),
                 "--pairs-csv", str(tmp_path / "pairs.csv")]) == 0
    out = capsys.readouterr().out
    assert "| test |" in out and "| dev |" not in out and "95% CI" in out
    assert (tmp_path / "w.png").is_file() and "significant" in (tmp_path / "pairs.csv").read_text()
    assert main([str(a), "--format", "csv", "--metric", "cer"]) == 0
    assert capsys.readouterr().out.startswith("experiment,path,checkpoint,params")
    assert main([str(tmp_path)]) == 2
    assert "no decode results" in capsys.readouterr().err


def test_results_md_is_the_experiments_own_table(experiments):
    a, *_ = experiments
    path = refresh_results_md(a)
    text = path.read_text()
    assert text.startswith("# Results: baseline")
    assert "| method | dev | test |" in text and "## CER (%)" in text
    assert "10 epochs" in text and "2.00 training hours" in text
    assert "\nText normalisation: none.\n" in text  # as `asrkit compare` prints it


def test_same_set_name_with_other_references_is_not_paired(experiments, tmp_path):
    a, *_ = experiments
    other, _ = _fake_experiment(tmp_path, "other", 0.1, ["test"], seed=2)
    ref = other / "decode" / "avg_2" / "test" / "attention" / "ref.txt"
    ref.write_text(ref.read_text().replace("utt000 ", "utt000 different words "))
    comparison = compare_experiments([a, other], methods=["attention"])
    assert comparison.pairs == []
    assert "different references" in format_markdown(comparison)


def test_a_run_without_its_texts_or_with_foreign_ids_is_named(experiments, tmp_path, capsys):
    a, *_ = experiments
    other, _ = _fake_experiment(tmp_path, "other", 0.1, ["test"], seed=2)
    run = other / "decode" / "avg_2" / "test" / "attention"
    (run / "hyp.txt").unlink()
    comparison = compare_experiments([a, other], methods=["attention"])
    assert comparison.pairs == []
    assert f"Note: test/attention: baseline and other not compared: no {run / 'hyp.txt'}" \
        in format_markdown(comparison)
    (run / "hyp.txt").write_text((run / "ref.txt").read_text() + "zz extra words\n")
    assert main([str(a), str(other), "--methods", "attention"]) == 2
    assert capsys.readouterr().err == (f"asrkit compare: {run}: 1 hypothesis id(s) have no "
                                       "reference, e.g. 'zz'\n")
    assert main([str(a), str(other), "--bootstrap-samples", "0"]) == 2
    assert "--bootstrap-samples must be >= 1, got 0" in capsys.readouterr().err


def test_plot_marks_a_missing_result_unlike_a_zero_bar(experiments):
    """`better` was not decoded on dev: its slot holds "n/a", not a 0-height bar."""
    import matplotlib.pyplot as plt

    a, b, *_ = experiments
    comparison = compare_experiments([a, b], methods=["attention"])  # groups: dev, test
    fig = plot_figure(comparison)
    try:
        ax = fig.axes[0]
        marks = [(t.get_text(), t.get_position()[0]) for t in ax.texts]
        assert len(marks) == 1 and marks[0][0] == "n/a"
        assert marks[0][1] == pytest.approx(0 + 0.5 * 0.4)  # dev group, second experiment
        bars = [p for p in ax.patches if p.get_height() > 0]
        assert len(ax.patches) == len(bars) == 3  # baseline dev, baseline test, better test
    finally:
        plt.close(fig)
    # `better` first: its "n/a" is left of the first group's centre, still inside the axes
    fig = plot_figure(compare_experiments([b, a], methods=["attention"]))
    try:
        ax = fig.axes[0]
        (mark,) = [t.get_position()[0] for t in ax.texts]
        assert mark == pytest.approx(-0.2) and ax.get_xlim() == (-0.5, 1.5)
    finally:
        plt.close(fig)


def test_an_experiment_given_twice_is_refused(experiments, capsys):
    a, *_ = experiments
    assert main([str(a), str(a / ".." / a.name)]) == 2
    err = capsys.readouterr().err
    assert "experiment given twice" in err and len(err.strip().splitlines()) == 1


def test_csv_leaves_the_pairs_to_pairs_csv_and_says_so(experiments, tmp_path, capsys):
    a, b, *_ = experiments
    assert main([str(a), str(b), "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))  # stdout: one CSV table
    assert len(rows) == 6 and "ci_low" not in captured.out  # 2 x 2 + 1 x 2 results
    assert "2 pairwise difference(s)" in captured.err and "--pairs-csv" in captured.err
    assert main([str(a), str(b), "--format", "csv", "--pairs-csv", str(tmp_path / "p.csv")]) == 0
    assert capsys.readouterr().err == ""
    pairs = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(p["set"], p["a"], p["b"]) for p in pairs] == [("test", "baseline", "better")] * 2
    assert float(pairs[0]["ci_low"]) <= float(pairs[0]["delta"]) <= float(pairs[0]["ci_high"])


def test_result_directories_keep_every_digit_of_a_float_setting(tmp_path):
    from asrkit.scoring.decode_dir import result_dir_name

    name = result_dir_name
    assert name("joint", {"beam": 10, "ctc_weight": 0.3, "length_norm": False,
                          "max_len_ratio": 1.0, "top_k": None}) == \
        "joint-beam10-ctc_weight0.3-length_normfalse-max_len_ratio1"
    assert name("joint", {"ctc_weight": 0.3000001}) == "joint-ctc_weight0.3000001"
    assert name("joint", {"length_penalty": 1e-05}) == "joint-length_penalty1e-05"
