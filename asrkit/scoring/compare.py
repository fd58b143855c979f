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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asrkit.cli_checks import check_not_an_input
from asrkit.scoring.bootstrap import BootstrapResult, paired_bootstrap
from asrkit.scoring.decode_dir import (
    WER_FILE,
    DecodeRun,
    checkpoint_dir_name,
    find_runs,
    setting_value,
    utterance_errors,
)
from asrkit.scoring.experiment_info import ExperimentInfo, experiment_info, short_names
from asrkit.scoring.kaldi_text import read_text
from asrkit.scoring.normalize import TextNormalizer

log = logging.getLogger(__name__)

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
    group: str = ""  # the label across experiments: rows decoded alike share it (plots)

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
    notes: list[str] = field(default_factory=list)  # pairs compared despite differences,
    # filters that found nothing

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
    def groups(self) -> list[str]:
        return sorted({row.group for row in self.rows},
                      key=lambda group: (_method_key(group.split(" ")[0]), group))

    def value(self, row: Row, set_name: str) -> float | None:
        run = row.runs.get(set_name)
        return None if run is None else run.rate(self.metric)

    def row_in_group(self, experiment: str, group: str) -> Row | None:
        return next((r for r in self.rows if r.info.name == experiment and r.group == group),
                    None)


def compare_experiments(exp_dirs: Sequence[str | Path], sets: Sequence[str] | None = None,
                        methods: Sequence[str] | None = None, metric: str = "wer",
                        num_samples: int = 1000, seed: int = 0,
                        checkpoint: str | None = None,
                        trusted_modules: Sequence[str] = (), pairs: bool = True) -> Comparison:
    """Read every experiment's decode results (optionally only some sets, methods or one
    checkpoint) and run the pairwise bootstrap (``pairs``). An experiment without any result
    is an error naming it; with filters, only when no experiment has a result (the others
    get a note)."""
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
    filtered = bool(sets or methods or checkpoint)
    experiments, rows, empty = [], [], []
    for path, name in zip(paths, short_names(paths)):
        left_out: list[str] = []
        found = find_runs(path, sets, methods, checkpoint, left_out)
        for message in left_out:  # once each (the look below for any result is silent)
            log.warning("%s", message)
        if not found and not left_out and not (filtered and find_runs(path, left_out=[])):
            raise ValueError(f"{path}: no decode results (run `asrkit decode "
                             f"exp_dir={path} ...` first)")
        if not found:  # none asked for, or only results of an earlier checkpoint
            empty.append(f"{name}: " + (
                "no current decode results (those found were decoded with a checkpoint "
                "written again since: decode again)" if left_out else
                "no decode results for the sets/methods/checkpoint asked"))
            experiments.append(ExperimentInfo(name, path))
            continue
        infos = {c: experiment_info(path, name, c, trusted_modules)
                 for c in {r.checkpoint for r in found}}
        newest = max(infos.values(), key=lambda i: (i.epochs or -1, str(i.checkpoint)))
        experiments.append(newest)
        rows += _rows(found, infos)
    if not rows and not filtered:  # every experiment's results are of a rewritten checkpoint
        raise ValueError("; ".join(empty))
    if not rows:
        raise ValueError(f"{', '.join(map(str, paths))}: no decode results for "
                         f"{_asked(sets, methods, checkpoint)} ({_available(paths)})")
    _group_rows(rows)
    comparison = Comparison(metric, experiments, rows, [])
    comparison.notes += empty
    comparison.notes += _unmatched_filters(paths, sets, methods)
    if pairs:
        comparison.pairs = _pairs(comparison, num_samples, seed)
    return comparison


def _asked(sets: Sequence[str] | None, methods: Sequence[str] | None,
           checkpoint: str | None) -> str:
    """What the filters ask for, in words: "the set 'tset' and the checkpoint 'x.pt'"."""
    parts = [f"the {kind}{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"
             for kind, names in (("set", sets or ()), ("method", methods or ()),
                                 ("checkpoint", [checkpoint] if checkpoint else ()))
             if names]
    return " and ".join(parts)


def _found(paths: Sequence[Path]) -> tuple[list[str], list[str], list[str]]:
    """Every set, method and checkpoint with a result in any of the experiments."""
    runs = [run for path in paths for run in find_runs(path, left_out=[])]
    return (sorted({run.set_name for run in runs}), sorted({run.method for run in runs}),
            sorted({str(run.checkpoint) for run in runs if run.checkpoint is not None}))


def _available(paths: Sequence[Path]) -> str:
    sets, methods, checkpoints = _found(paths)
    return (f"found: sets {', '.join(sets) or 'none'}; methods {', '.join(methods) or 'none'};"
            f" checkpoints {', '.join(checkpoints) or 'none'}")


def _unmatched_filters(paths: Sequence[Path], sets: Sequence[str] | None,
                       methods: Sequence[str] | None) -> list[str]:
    """A note for each set or method asked that no experiment has (a misspelling?), with
    every one the experiments have."""
    if not sets and not methods:
        return []
    found_sets, found_methods, _ = _found(paths)
    notes = []
    for kind, asked, found in (("set", sets, found_sets), ("method", methods, found_methods)):
        notes += [f"no experiment has results for the {kind} {name!r} (found: "
                  f"{', '.join(found)})" for name in asked or () if name not in found]
    return notes


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
        varying = _label_keys(same)
        for row in same:
            extra = [checkpoint_dir_name(str(row.checkpoint))] if len(checkpoints) > 1 else []
            extra += [f"{k} {setting_value(row.settings, k)}" for k in varying]
            row.label = f"{method} ({', '.join(extra)})" if extra else method
    return sorted(rows.values(), key=lambda r: (_method_key(r.method), r.label))


def _group_rows(rows: list[Row]) -> None:
    """Label rows across experiments (``Row.group``): the method, the checkpoint when an
    experiment has several for it, and the settings whose values differ among the method's
    rows, so that rows decoded alike share a group and an experiment has one row in each."""
    for method in {row.method for row in rows}:
        same = [row for row in rows if row.method == method]
        by_experiment: dict[Path, set] = {}
        for row in same:
            by_experiment.setdefault(row.info.path, set()).add(row.checkpoint)
        checkpoints = any(len(c) > 1 for c in by_experiment.values())
        varying = _label_keys(same)
        for row in same:
            extra = [checkpoint_dir_name(str(row.checkpoint))] if checkpoints else []
            extra += [f"{k} {setting_value(row.settings, k)}" for k in varying]
            row.group = f"{method} ({', '.join(extra)})" if extra else method


# a decode's conditions rather than its search's: named in a row's label even when no other
# row of the method differs (a chunked or bf16 decode alone must not read as the plain one)
ALWAYS_NAMED = ("chunk_size", "left_chunks", "precision")


def _label_keys(same: list[Row]) -> list[str]:
    """The settings one method's rows are labelled with: those whose values differ among
    them, and any of ``ALWAYS_NAMED`` a row has."""
    return sorted({k for row in same for k in row.settings if k in ALWAYS_NAMED or
                   len({json.dumps(setting_value(r.settings, k)) for r in same}) > 1})


def settings_difference(a: Row, b: Row) -> str:
    """``beam 10 vs 20, ctc_weight 0.3 vs 0.5`` for the settings two rows differ in."""
    keys = sorted(set(a.settings) | set(b.settings))
    values = {k: (setting_value(a.settings, k), setting_value(b.settings, k)) for k in keys}
    return ", ".join(f"{k} {va} vs {vb}" for k, (va, vb) in values.items() if va != vb)


def _pairs(comparison: Comparison, num_samples: int, seed: int) -> list[PairResult]:
    """Bootstrap every two rows scored on the same set with the same method; a pair whose
    reference files differ (same set name, other utterances) is left out, and one decoded
    with other search settings is compared with a note saying so. So are pairs scored with
    different text normalisations, and sets without reference words."""
    pairs = []
    errors: dict[Path, dict[str, tuple[int, int]]] = {}  # per run, rescored once
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
                    note = (f"{set_name}: {row_a.name} and {row_b.name} were scored "
                            "on different references (same set name, other utterances); "
                            "not compared")
                    if note not in comparison.not_paired:
                        comparison.not_paired.append(note)
                    continue
                scored_as = [_normalisation(run) for run in (run_a, run_b)]
                if scored_as[0] != scored_as[1]:
                    comparison.not_paired.append(
                        f"{set_name}/{method}: {row_a.name} and {row_b.name} were scored with "
                        f"different normalisations ({scored_as[0]} vs {scored_as[1]}); not "
                        "compared")
                    continue
                for run in (run_a, run_b):
                    if run.path not in errors:
                        errors[run.path] = _errors(run, comparison.metric)
                errors_a, errors_b = errors[run_a.path], errors[run_b.path]
                common = sorted(errors_a)
                if not sum(errors_a[u][1] for u in common):
                    note = (f"{set_name}: no reference {_unit(comparison.metric)}s, so no "
                            f"{comparison.metric.upper()} to compare")
                    if note not in comparison.not_paired:
                        comparison.not_paired.append(note)
                    continue
                if differ := settings_difference(row_a, row_b):
                    comparison.notes.append(
                        f"{set_name}/{method}: {row_a.name} and {row_b.name} were decoded with "
                        f"different search settings ({differ}); their difference is not the "
                        "models' alone")
                result = paired_bootstrap([errors_a[u][0] for u in common],
                                          [errors_b[u][0] for u in common],
                                          [errors_a[u][1] for u in common], num_samples, seed)
                pairs.append(PairResult(set_name, method, row_a.name, row_b.name, result,
                                        len(common)))
    return pairs


def _missing_texts(run: DecodeRun) -> list[Path]:
    return [path for path in (run.path / "hyp.txt", run.path / "ref.txt")
            if not path.is_file()]


def _unit(metric: str) -> str:
    return "word" if metric == "wer" else "character"


def _errors(run: DecodeRun, metric: str) -> dict[str, tuple[int, int]]:
    """Per-utterance (errors, reference tokens) at the metric's unit."""
    return utterance_errors(run, unit="word" if metric == "wer" else "char")


def _normalisation(run: DecodeRun) -> str:
    return TextNormalizer.from_dict(run.summary.get("normalize")).describe()


def normalisation_lines(comparison: Comparison) -> list[str]:
    """``Text normalisation: ….`` when every result was scored alike, else a warning."""
    warning = normalisation_warning(comparison)
    if warning is not None:
        return [warning]
    return [f"Text normalisation: {_normalisation(comparison.runs[0][1])}."]


def normalisation_warning(comparison: Comparison) -> str | None:
    """A warning when the results were scored with different text normalisations."""
    described = sorted({_normalisation(run) for _, run in comparison.runs})
    if len(described) < 2:
        return None
    return (f"Warning: results were scored with different normalisations "
            f"({'; '.join(described)}); they are not comparable.")


def check_outputs(comparison: Comparison, outputs: dict[str, Path | None]) -> None:
    """ValueError naming the option when an output file (``{option: path}``, None: not
    asked) is missing a directory, is one, or is one of the result files compared."""
    read = [run.path / name for _, run in comparison.runs
            for name in ("hyp.txt", "ref.txt", "errors.txt", WER_FILE)]
    for option, path in outputs.items():
        if path is None:
            continue
        check_not_an_input(path, read, option,
                           "one of the decode results compared; write it elsewhere")
        if path.is_dir():
            raise ValueError(f"{option} {path}: is a directory (a file is written there)")


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)
