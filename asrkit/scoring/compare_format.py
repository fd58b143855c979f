"""A Comparison (asrkit.scoring.compare) as a Markdown table, CSV or a bar plot.

    print(format_markdown(comparison))    # results, then the pairwise significance table
    print(format_csv(comparison))         # one row per experiment x row x set, unrounded
    print(format_pairs_csv(comparison))   # the pairwise differences alone
    plot(comparison, "wer.png")
"""

from __future__ import annotations

import csv
import io
import json
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from asrkit.atomic_text import write_error
from asrkit.scoring.compare import Comparison, normalisation_lines
from asrkit.scoring.normalize import TextNormalizer

LABEL_CHARS = 20  # a plot group's label is wrapped to this width (its slot: 1.4 in)


def format_markdown(comparison: Comparison) -> str:
    """The results table (a row per experiment and method/checkpoint/settings, a column per
    set), then the pairwise significance table and its notes."""
    metric = comparison.metric.upper()
    sets = comparison.sets
    header = ["experiment", "params", "epochs", "train h", "method", *sets]
    align = ["---", "---:", "---:", "---:", "---", *(["---:"] * len(sets))]
    lines = [f"{metric} (%) per test set", "", _row(header), _row(align)]
    for experiment in comparison.experiments:
        shown = None
        for row in (r for r in comparison.rows if r.info.name == experiment.name):
            info = row.info
            facts = [info.name, _params(info.params), _fmt(info.epochs), _hours(info.train_hours)]
            cells = facts if facts != shown else ["", "", "", ""]
            shown = facts
            lines.append(_row([*cells, row.label, *(_pct(comparison.value(row, s)) for s in sets)]))
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
    elif len(comparison.rows) > 1 and not comparison.not_paired:
        lines += ["", "No two rows were scored on the same set with the same method."]
    if notes := note_lines(comparison):
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def note_lines(comparison: Comparison) -> list[str]:
    """``Note: …`` for each pair left out or compared despite a difference, and each
    filter that found nothing (the CSV formats print them on stderr)."""
    return [f"Note: {note}." for note in (*comparison.not_paired, *comparison.notes)]


def format_csv(comparison: Comparison) -> str:
    """One line per experiment × row × set (tidy), every number as stored in wer.json but
    the rates, which are computed from its counts (unrounded)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    keys = ["wer", "cer", "sub", "del", "ins", "ref_words", "utts", "rtf"]
    writer.writerow(["experiment", "path", "checkpoint", "params", "epochs", "train_hours",
                     "set", "method", "settings", "normalize", *keys])
    order = {info.name: i for i, info in enumerate(comparison.experiments)}
    for row in sorted(comparison.rows, key=lambda r: (order[r.info.name], r.label)):
        info = row.info
        for set_name, run in sorted(row.runs.items()):
            writer.writerow([info.name, str(info.path), row.checkpoint or "",
                             _blank(info.params), _blank(info.epochs),
                             _blank(info.train_hours), set_name, row.method,
                             json.dumps(row.settings, sort_keys=True),
                             TextNormalizer.from_dict(run.summary.get("normalize")).describe(),
                             _blank(run.rate("wer")), _blank(run.rate("cer")),
                             *(_blank(run.number(k)) for k in keys[2:])])
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
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except OSError as e:  # a full disk: the file named, an earlier plot kept
        raise write_error(path, e) from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def plot_figure(comparison: Comparison):
    """Grouped bars: one group per (set, row group: the method, and the checkpoint and
    settings where rows differ in them), one bar per experiment (matplotlib Agg). A result that is missing (an experiment not decoded on that set that way, or an
    undefined rate) has no bar but an upright "n/a" in its slot, unlike a 0 % bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(s, group) for s in comparison.sets for group in comparison.groups]
    experiments = comparison.experiments
    width = 0.8 / max(len(experiments), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.5))
    for i, info in enumerate(experiments):
        values = []
        for set_name, group in groups:
            row = comparison.row_in_group(info.name, group)
            values.append(None if row is None else comparison.value(row, set_name))
        xs = [g + (i - (len(experiments) - 1) / 2) * width for g in range(len(groups))]
        ax.bar([x for x, v in zip(xs, values) if v is not None],
               [v for v in values if v is not None], width, label=info.name, color=f"C{i}")
        for x in (x for x, v in zip(xs, values) if v is None):
            ax.text(x, 0.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7,
                    color=f"C{i}")
    # a group's label wrapped to its slot's width (checkpoint and settings make them long)
    labels = [f"{s}\n{textwrap.fill(m, LABEL_CHARS, break_long_words=False)}"
              for s, m in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    ax.set_xlim(-0.5, len(groups) - 0.5)  # every slot, "n/a" ones too (text does not widen it)
    ax.set_ylabel(f"{comparison.metric.upper()} (%)")
    ax.set_title(f"{comparison.metric.upper()} per test set and method (n/a: not scored)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


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
