"""Compare scored decodes across experiment directories: one table of experiment × test set ×
method with WER (or CER), parameter count, epochs and training hours, and for every two
experiments scored on the same set with the same method the difference with a 95 %
paired-bootstrap confidence interval (asrkit.scoring.bootstrap).

    comparison = compare_experiments(["exp/conformer", "exp/transformer"], sets=["test"])
    print(format_markdown(comparison))    # or format_csv(comparison); plot(comparison, "wer.png")
    print(format_pairs_csv(comparison))   # the pairwise differences alone, as CSV
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asrkit.scoring.bootstrap import BootstrapResult, paired_bootstrap
from asrkit.scoring.decode_dir import DecodeRun, find_runs, utterance_errors
from asrkit.scoring.experiment_info import ExperimentInfo, experiment_info, short_names
from asrkit.scoring.wer import read_text

METRICS = ("wer", "cer")
# the order methods are listed in (the decoding registry's); others follow alphabetically
METHOD_ORDER = ("ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint")


@dataclass(frozen=True)
class PairResult:
    set_name: str
    method: str
    a: str
    b: str
    result: BootstrapResult
    utterances: int


@dataclass
class Comparison:
    metric: str
    experiments: list[ExperimentInfo]
    runs: list[tuple[ExperimentInfo, DecodeRun]]
    pairs: list[PairResult]
    not_paired: list[str] = field(default_factory=list)  # why a pair was left out

    @property
    def sets(self) -> list[str]:
        return sorted({run.set_name for _, run in self.runs})

    @property
    def methods(self) -> list[str]:
        return sorted({run.method for _, run in self.runs}, key=_method_key)

    def value(self, info: ExperimentInfo, set_name: str, method: str) -> float | None:
        for owner, run in self.runs:
            if owner is info and run.set_name == set_name and run.method == method:
                return run.summary.get(self.metric)
        return None


def compare_experiments(exp_dirs: Sequence[str | Path], sets: Sequence[str] | None = None,
                        methods: Sequence[str] | None = None, metric: str = "wer",
                        num_samples: int = 1000, seed: int = 0) -> Comparison:
    """Read every experiment's decode results (optionally only some sets/methods) and run
    the pairwise bootstrap. An experiment without any result is an error naming it."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    paths = [Path(p) for p in exp_dirs]
    if not paths:
        raise ValueError("no experiment directories given")
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: experiment directory not found")
    experiments, runs = [], []
    for path, name in zip(paths, short_names(paths)):
        found = find_runs(path, sets, methods)
        if not found:
            what = " for the sets/methods asked" if sets or methods else ""
            raise ValueError(f"{path}: no decode results{what} (run `asrkit decode "
                             f"exp_dir={path} ...` first)")
        info = experiment_info(path, name, found[0].summary.get("checkpoint"))
        experiments.append(info)
        runs += [(info, run) for run in found]
    comparison = Comparison(metric, experiments, runs, [])
    comparison.pairs = _pairs(comparison, num_samples, seed)
    return comparison


def _pairs(comparison: Comparison, num_samples: int, seed: int) -> list[PairResult]:
    """Bootstrap every two experiments scored on the same set with the same method; a pair
    whose reference files differ (same set name, other utterances) is left out, noted."""
    pairs = []
    for set_name in comparison.sets:
        for method in comparison.methods:
            scored = [(info, run) for info, run in comparison.runs
                      if run.set_name == set_name and run.method == method]
            for (info_a, run_a), (info_b, run_b) in itertools.combinations(scored, 2):
                if not (_has_texts(run_a) and _has_texts(run_b)):
                    continue
                if read_text(run_a.path / "ref.txt") != read_text(run_b.path / "ref.txt"):
                    note = (f"{set_name}: {info_a.name} and {info_b.name} were scored on "
                            "different references (same set name, other utterances); "
                            "not compared")
                    if note not in comparison.not_paired:
                        comparison.not_paired.append(note)
                    continue
                errors_a = _errors(run_a, comparison.metric)
                errors_b = _errors(run_b, comparison.metric)
                common = list(errors_a)
                result = paired_bootstrap([errors_a[u][0] for u in common],
                                          [errors_b[u][0] for u in common],
                                          [errors_a[u][1] for u in common], num_samples, seed)
                pairs.append(PairResult(set_name, method, info_a.name, info_b.name, result,
                                        len(common)))
    return pairs


def _has_texts(run: DecodeRun) -> bool:
    return (run.path / "hyp.txt").is_file() and (run.path / "ref.txt").is_file()


def _errors(run: DecodeRun, metric: str) -> dict[str, tuple[int, int]]:
    """Per-utterance (errors, reference tokens) at the metric's unit."""
    return utterance_errors(run, unit="word" if metric == "wer" else "char")


# ---- output --------------------------------------------------------------------------
def format_markdown(comparison: Comparison) -> str:
    """The results table (a row per experiment and method, a column per set), then the
    pairwise significance table."""
    metric = comparison.metric.upper()
    sets = comparison.sets
    header = ["experiment", "params", "epochs", "train h", "method", *sets]
    align = ["---", "---:", "---:", "---:", "---", *(["---:"] * len(sets))]
    lines = [f"{metric} (%) per test set", "", _row(header), _row(align)]
    for info in comparison.experiments:
        first = True
        for method in comparison.methods:
            values = [comparison.value(info, s, method) for s in sets]
            if all(v is None for v in values):
                continue
            cells = ([info.name, _params(info.params), _fmt(info.epochs), _hours(info.train_hours)]
                     if first else ["", "", "", ""])
            lines.append(_row([*cells, method, *(_pct(v) for v in values)]))
            first = False
    lines += ["", *normalisation_lines(comparison)]
    if comparison.pairs:
        first_pair = comparison.pairs[0].result
        note = (f"Paired bootstrap over utterances ({first_pair.num_samples} resamples): "
                f"{metric} of B − A with its {first_pair.confidence:.0%} confidence interval; "
                "significant when the interval excludes 0.")
        lines += ["", note, "",
                  _row(["set", "method", "A", "B", f"{metric} A", f"{metric} B", "B − A",
                        "95% CI", "P(B better)", "significant"]),
                  _row(["---", "---", "---", "---", "---:", "---:", "---:", "---", "---:",
                        "---"])]
        for pair in comparison.pairs:
            r = pair.result
            lines.append(_row([pair.set_name, pair.method, pair.a, pair.b, f"{r.wer_a:.2f}",
                               f"{r.wer_b:.2f}", f"{r.delta:+.2f}",
                               f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]", f"{r.prob_b_better:.3f}",
                               "yes" if r.significant else "no"]))
    elif len(comparison.experiments) > 1 and not comparison.not_paired:
        lines += ["", "No two experiments were scored on the same set with the same method."]
    if comparison.not_paired:
        lines += ["", *(f"Note: {note}." for note in comparison.not_paired)]
    return "\n".join(lines) + "\n"


def format_csv(comparison: Comparison) -> str:
    """One row per experiment × set × method (tidy), every number unrounded."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = ["wer", "cer", "sub", "del", "ins", "ref_words", "utts", "rtf"]
    writer.writerow(["experiment", "path", "checkpoint", "params", "epochs", "train_hours",
                     "set", "method", *keys])
    for info, run in sorted(comparison.runs, key=lambda r: (
            comparison.experiments.index(r[0]), r[1].set_name, _method_key(r[1].method))):
        writer.writerow([info.name, str(info.path), info.checkpoint or "", _blank(info.params),
                         _blank(info.epochs), _blank(info.train_hours), run.set_name,
                         run.method, *(_blank(run.summary.get(k)) for k in keys)])
    return out.getvalue()


def format_pairs_csv(comparison: Comparison) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["set", "method", "a", "b", "metric", "value_a", "value_b", "delta",
                     "ci_low", "ci_high", "prob_b_better", "significant", "utts"])
    for p in comparison.pairs:
        r = p.result
        writer.writerow([p.set_name, p.method, p.a, p.b, comparison.metric, r.wer_a, r.wer_b,
                         r.delta, r.ci_low, r.ci_high, r.prob_b_better, int(r.significant),
                         p.utterances])
    return out.getvalue()


def plot(comparison: Comparison, path: str | Path) -> Path:
    """Draw :func:`plot_figure` to ``path`` (PNG, or any format matplotlib knows)."""
    import matplotlib.pyplot as plt

    fig = plot_figure(comparison)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_figure(comparison: Comparison):
    """Grouped bars: one group per (set, method), one bar per experiment (matplotlib Agg).
    A result that is missing (an experiment not decoded on that set with that method, or
    an undefined rate) has no bar but an upright "n/a" in its slot, unlike a 0 % bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(s, m) for s in comparison.sets for m in comparison.methods]
    width = 0.8 / max(len(comparison.experiments), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) + 2), 4.5))
    for i, info in enumerate(comparison.experiments):
        values = [comparison.value(info, s, m) for s, m in groups]
        xs = [g + (i - (len(comparison.experiments) - 1) / 2) * width for g in range(len(groups))]
        ax.bar([x for x, v in zip(xs, values) if v is not None],
               [v for v in values if v is not None], width, label=info.name, color=f"C{i}")
        for x in (x for x, v in zip(xs, values) if v is None):
            ax.text(x, 0.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7,
                    color=f"C{i}")
    ax.set_xticks(range(len(groups)), [f"{s}\n{m}" for s, m in groups], fontsize=8)
    ax.set_ylabel(f"{comparison.metric.upper()} (%)")
    ax.set_title(f"{comparison.metric.upper()} per test set and method (n/a: not scored)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def normalisation_lines(comparison: Comparison) -> list[str]:
    """``Text normalisation: ….`` when every result was scored alike, else a warning."""
    from asrkit.scoring.normalize import TextNormalizer

    described = {TextNormalizer.from_dict(run.summary.get("normalize")).describe()
                 for _, run in comparison.runs}
    if len(described) == 1:
        return [f"Text normalisation: {described.pop()}."]
    listed = "; ".join(sorted(described))
    return [(f"Warning: results were scored with different normalisations ({listed}); "
             "they are not comparable.")]


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _fmt(value: object) -> str:
    return "–" if value is None else str(value)


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _params(value: int | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}k"


def _blank(value: object) -> object:
    return "" if value is None else value
