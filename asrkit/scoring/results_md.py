"""``exp_dir/results.md``: the experiment's own results table, rewritten from every scored
decode under ``decode/`` (``asrkit decode`` refreshes it after each run). Each row is one
method with one checkpoint and search settings (a decode with another checkpoint or beam
adds a row); the "Decoding" section lists each row's checkpoint and settings.

    refresh_results_md("exp/conformer")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asrkit.atomic_text import write_text_atomic
from asrkit.experiment_dir import ExperimentDir
from asrkit.scoring.compare import Comparison, compare_experiments, normalisation_lines
from asrkit.scoring.decode_dir import find_runs


def format_results_md(exp_dir: str | Path, trusted_modules: Sequence[str] = ()) -> str:
    exp_dir = Path(exp_dir)
    comparison = compare_experiments([exp_dir], trusted_modules=trusted_modules, pairs=False)
    lines = [f"# Results: {exp_dir.name}", ""]
    infos = {row.checkpoint: row.info for row in comparison.rows}
    for checkpoint, info in sorted(infos.items(), key=lambda kv: str(kv[0])):
        facts = [f"checkpoint `{checkpoint}`" if checkpoint else None,
                 f"{info.params:,} parameters" if info.params is not None else None,
                 f"{info.epochs} epochs" if info.epochs is not None else None,
                 f"{info.train_hours:.2f} training hours" if info.train_hours is not None
                 else None]
        lines.append(" · ".join(f for f in facts if f) or "(no checkpoint information)")
        lines.append("")
    lines += [*normalisation_lines(comparison), ""]
    for metric in ("wer", "cer"):
        comparison.metric = metric
        lines += [f"## {metric.upper()} (%)", "", *_table(comparison, metric), ""]
    lines += ["## Real-time factor (CPU/GPU time / audio time)", "", *_table(comparison, "rtf"),
              ""]
    lines += ["## Decoding", ""]
    for row in comparison.rows:
        detail = ", ".join(f"{k} {v}" for k, v in row.settings.items())
        for set_name, run in sorted(row.runs.items()):
            failed = run.summary.get("failed") or 0
            note = f"; {failed} utterance(s) failed to decode (empty hypotheses)" if failed else ""
            lines.append(f"- `{set_name}` / `{row.label}`: checkpoint `{row.checkpoint}`, "
                         f"{run.summary.get('utts')} utterances, "
                         f"{run.summary.get('ref_words')} words{note}"
                         + (f"; {detail}" if detail else ""))
    return "\n".join(lines) + "\n"


def refresh_results_md(exp_dir: str | Path, trusted_modules: Sequence[str] = ()) -> Path | None:
    """Rewrite ``exp_dir/results.md`` (atomically); None when nothing is decoded yet.
    ``trusted_modules``: as for loading the model (asrkit.models.trusted_targets)."""
    exp = ExperimentDir(exp_dir)
    if not find_runs(exp.path):
        return None
    path = exp.results_md
    return write_text_atomic(path, format_results_md(exp.path, trusted_modules))


def _table(comparison: Comparison, key: str) -> list[str]:
    sets = comparison.sets
    lines = ["| method | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    for row in comparison.rows:
        cells = []
        for set_name in sets:
            run = row.runs.get(set_name)
            value = None if run is None else (run.number(key) if key == "rtf"
                                              else run.rate(key))
            cells.append("–" if value is None else (f"{value:.4f}" if key == "rtf"
                                                     else f"{value:.2f}"))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines
