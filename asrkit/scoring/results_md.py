"""``exp_dir/results.md``: the experiment's own results table, rewritten from every
``decode/<set>/<method>/wer.json`` found (``asrkit decode`` refreshes it after each run).

    refresh_results_md("exp/conformer")
"""

from __future__ import annotations

import os
from pathlib import Path

from asrkit.scoring.compare import Comparison, compare_experiments, normalisation_lines
from asrkit.scoring.decode_dir import find_runs

RESULTS_FILE = "results.md"


def format_results_md(exp_dir: str | Path) -> str:
    exp_dir = Path(exp_dir)
    comparison = compare_experiments([exp_dir])
    info = comparison.experiments[0]
    facts = [f"checkpoint `{info.checkpoint}`" if info.checkpoint else None,
             f"{info.params:,} parameters" if info.params is not None else None,
             f"{info.epochs} epochs" if info.epochs is not None else None,
             f"{info.train_hours:.2f} training hours" if info.train_hours is not None else None]
    lines = [f"# Results: {exp_dir.name}", "",
             " · ".join(f for f in facts if f) or "(no checkpoint information)", "",
             *normalisation_lines(comparison), ""]
    for metric in ("wer", "cer"):
        comparison.metric = metric
        lines += [f"## {metric.upper()} (%)", "", *_table(comparison, metric), ""]
    lines += ["## Real-time factor (CPU/GPU time / audio time)", "", *_table(comparison, "rtf"),
              ""]
    lines += ["## Decoding", ""]
    for _, run in comparison.runs:
        options = run.summary.get("decode") or {}
        detail = ", ".join(f"{k} {v}" for k, v in options.items())
        failed = run.summary.get("failed") or 0
        note = f"; {failed} utterance(s) failed to decode (empty hypotheses)" if failed else ""
        lines.append(f"- `{run.set_name}/{run.method}`: {run.summary.get('utts')} utterances, "
                     f"{run.summary.get('ref_words')} words{note}"
                     + (f"; {detail}" if detail else ""))
    return "\n".join(lines) + "\n"


def refresh_results_md(exp_dir: str | Path) -> Path | None:
    """Rewrite ``exp_dir/results.md`` (atomically); None when nothing is decoded yet."""
    exp_dir = Path(exp_dir)
    if not find_runs(exp_dir):
        return None
    path = exp_dir / RESULTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(format_results_md(exp_dir), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _table(comparison: Comparison, key: str) -> list[str]:
    sets = comparison.sets
    lines = ["| method | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for method in comparison.methods:
        cells = []
        for set_name in sets:
            value = next((run.summary.get(key) for _, run in comparison.runs
                          if run.set_name == set_name and run.method == method), None)
            cells.append("–" if value is None else (f"{value:.4f}" if key == "rtf"
                                                     else f"{value:.2f}"))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines
