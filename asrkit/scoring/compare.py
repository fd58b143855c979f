"""Compare scored decodes across experiment directories: one table of experiment × method ×
test set with WER (or CER), parameter count, epochs and training hours, and for every two
rows scored on the same set with the same method the difference with a 95 % paired-bootstrap
confidence interval (asrkit.scoring.bootstrap).

    comparison = compare_experiments(["exp/conformer", "exp/transformer"], sets=["test"])
    print(format_markdown(comparison))   # asrkit.scoring.compare_format: md, csv, plot

A row is one experiment decoded with one method, checkpoint and search settings: decoding
an experiment again with another checkpoint or beam adds a row (labelled with what differs)
instead of replacing one. Rows compared although their search settings differ are listed in
a note, since their difference is then not the models' alone.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asrkit.scoring.bootstrap import BootstrapResult, paired_bootstrap
from asrkit.scoring.decode_dir import (
    DecodeRun,
    checkpoint_dir_name,
    find_runs,
    setting_value,
    utterance_errors,
)
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
class Row:
    """One experiment decoded with one method, checkpoint and search settings (its results
    on every set so decoded). ``label`` is the method, plus what tells the row apart from
    the experiment's other rows of that method (checkpoint, differing settings)."""

    info: ExperimentInfo
    method: str
    checkpoint: str | None
    settings: dict
    runs: dict[str, DecodeRun] = field(default_factory=dict)  # set -> run
    label: str = ""

    @property
    def name(self) -> str:
        """The row in pair tables: the experiment, with the label's extra when it has one."""
        extra = self.label[len(self.method):].strip()
        return f"{self.info.name} {extra}" if extra else self.info.name


@dataclass
class Comparison:
    metric: str
    experiments: list[ExperimentInfo]
    rows: list[Row]
    pairs: list[PairResult]
    not_paired: list[str] = field(default_factory=list)  # why a pair was left out
    notes: list[str] = field(default_factory=list)       # pairs compared despite differences

    @property
    def runs(self) -> list[tuple[ExperimentInfo, DecodeRun]]:
        return [(row.info, run) for row in self.rows for run in row.runs.values()]

    @property
    def sets(self) -> list[str]:
        return sorted({s for row in self.rows for s in row.runs})

    @property
    def methods(self) -> list[str]:
        return sorted({row.method for row in self.rows}, key=_method_key)

    @property
    def labels(self) -> list[str]:
        return sorted({row.label for row in self.rows},
                      key=lambda label: (_method_key(label.split(" ")[0]), label))

    def value(self, row: Row, set_name: str) -> float | None:
        run = row.runs.get(set_name)
        return None if run is None else run.summary.get(self.metric)

    def row(self, experiment: str, label: str) -> Row | None:
        return next((r for r in self.rows if r.info.name == experiment and r.label == label),
                    None)


def compare_experiments(exp_dirs: Sequence[str | Path], sets: Sequence[str] | None = None,
                        methods: Sequence[str] | None = None, metric: str = "wer",
                        num_samples: int = 1000, seed: int = 0,
                        checkpoint: str | None = None,
                        trusted_modules: Sequence[str] = ()) -> Comparison:
    """Read every experiment's decode results (optionally only some sets, methods or one
    checkpoint) and run the pairwise bootstrap. An experiment without any result is an
    error naming it."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    paths = [Path(p) for p in exp_dirs]
    if not paths:
        raise ValueError("no experiment directories given")
    seen: dict[Path, Path] = {}
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: experiment directory not found")
        if seen.setdefault(path.resolve(), path) is not path:
            raise ValueError(f"{path}: experiment given twice (also as {seen[path.resolve()]})")
    experiments, rows = [], []
    for path, name in zip(paths, short_names(paths)):
        found = find_runs(path, sets, methods, checkpoint)
        if not found:
            what = " for the sets/methods/checkpoint asked" if sets or methods or checkpoint \
                else ""
            raise ValueError(f"{path}: no decode results{what} (run `asrkit decode "
                             f"exp_dir={path} ...` first)")
        infos = {c: experiment_info(path, name, c, trusted_modules)
                 for c in {r.checkpoint for r in found}}
        newest = max(infos.values(), key=lambda i: (i.epochs or -1, str(i.checkpoint)))
        experiments.append(newest)
        rows += _rows(found, infos)
    comparison = Comparison(metric, experiments, rows, [])
    comparison.pairs = _pairs(comparison, num_samples, seed)
    return comparison


def _rows(runs: list[DecodeRun], infos: dict) -> list[Row]:
    """Group one experiment's runs into rows and label them apart."""
    rows: dict[tuple, Row] = {}
    for run in runs:
        key = (run.method, run.checkpoint, json.dumps(run.settings, sort_keys=True))
        row = rows.setdefault(key, Row(infos[run.checkpoint], run.method, run.checkpoint,
                                       run.settings))
        row.runs[run.set_name] = run
    for method in {row.method for row in rows.values()}:
        same = [row for row in rows.values() if row.method == method]
        checkpoints = {row.checkpoint for row in same}
        varying = sorted({k for row in same for k in row.settings
                          if len({json.dumps(setting_value(r.settings, k)) for r in same}) > 1})
        for row in same:
            extra = [checkpoint_dir_name(str(row.checkpoint))] if len(checkpoints) > 1 else []
            extra += [f"{k} {setting_value(row.settings, k)}" for k in varying]
            row.label = f"{method} ({', '.join(extra)})" if extra else method
    return sorted(rows.values(), key=lambda r: (_method_key(r.method), r.label))


def settings_difference(a: Row, b: Row) -> str:
    """``beam 10 vs 20, ctc_weight 0.3 vs 0.5`` for the settings two rows differ in."""
    keys = sorted(set(a.settings) | set(b.settings))
    values = {k: (setting_value(a.settings, k), setting_value(b.settings, k)) for k in keys}
    return ", ".join(f"{k} {va} vs {vb}" for k, (va, vb) in values.items() if va != vb)


def _pairs(comparison: Comparison, num_samples: int, seed: int) -> list[PairResult]:
    """Bootstrap every two rows scored on the same set with the same method; a pair whose
    reference files differ (same set name, other utterances) is left out, and one decoded
    with other search settings is compared with a note saying so."""
    pairs = []
    for set_name in comparison.sets:
        for method in comparison.methods:
            scored = [row for row in comparison.rows
                      if row.method == method and set_name in row.runs]
            for row_a, row_b in itertools.combinations(scored, 2):
                run_a, run_b = row_a.runs[set_name], row_b.runs[set_name]
                if missing := _missing_texts(run_a) + _missing_texts(run_b):
                    note = (f"{set_name}/{method}: {row_a.name} and {row_b.name} not compared: "
                            f"no {', '.join(str(path) for path in missing)} (the paired "
                            "test rescores the texts)")
                    if note not in comparison.not_paired:
                        comparison.not_paired.append(note)
                    continue
                if read_text(run_a.path / "ref.txt") != read_text(run_b.path / "ref.txt"):
                    note = (f"{set_name}: {row_a.info.name} and {row_b.info.name} were scored "
                            "on different references (same set name, other utterances); "
                            "not compared")
                    if note not in comparison.not_paired:
                        comparison.not_paired.append(note)
                    continue
                if differ := settings_difference(row_a, row_b):
                    comparison.notes.append(
                        f"{set_name}/{method}: {row_a.name} and {row_b.name} were decoded with "
                        f"different search settings ({differ}); their difference is not the "
                        "models' alone")
                errors_a = _errors(run_a, comparison.metric)
                errors_b = _errors(run_b, comparison.metric)
                common = list(errors_a)
                result = paired_bootstrap([errors_a[u][0] for u in common],
                                          [errors_b[u][0] for u in common],
                                          [errors_a[u][1] for u in common], num_samples, seed)
                pairs.append(PairResult(set_name, method, row_a.name, row_b.name, result,
                                        len(common)))
    return pairs


def _missing_texts(run: DecodeRun) -> list[Path]:
    return [path for path in (run.path / "hyp.txt", run.path / "ref.txt")
            if not path.is_file()]


def _errors(run: DecodeRun, metric: str) -> dict[str, tuple[int, int]]:
    """Per-utterance (errors, reference tokens) at the metric's unit."""
    return utterance_errors(run, unit="word" if metric == "wer" else "char")


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
