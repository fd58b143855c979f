"""Sweeps: `asrkit train -m encoder=transformer,conformer optim.lr=1e-3,2e-3 ...`.

As Hydra's multirun with its basic sweeper: an override with comma-separated values (or
`range(...)`/`choice(...)`) is swept, and every combination of the swept values is one job.
Hydra's own override grammar and ``BasicSweeper.split_arguments`` expand the list, so the
syntax is exactly Hydra's. Each job trains into ``<exp_dir>/<n>_<key>-<value>+...`` over
the swept keys (``n`` from 0, as Hydra's ``${hydra.job.num}``; e.g. ``3_encoder-conformer+
optim.lr-0.002``), a name made only of letters, digits and ``._-+`` so that it passes back
unquoted as ``asrkit decode exp_dir=<exp_dir>/3_encoder-conformer+optim.lr-0.002``; jobs
run one after another in this process; every job's config is composed and checked before
the first one starts. A name longer than a file name's 255 bytes (long paths swept) keeps
the last ``MAX_VALUE_CHARS`` characters of each value and a hash of the whole; a sweep that
expands to no job (an empty ``range``) is refused.

    jobs = expand_sweep(["encoder=transformer,conformer", "exp_dir=exp/sweep"])
    # [["encoder=transformer", "exp_dir=exp/sweep"], ["encoder=conformer", "exp_dir=exp/sweep"]]
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType


def expand_sweep(overrides: list[str]) -> list[list[str]]:
    """The override list of every job, in Hydra's order (the last swept key varies fastest).
    ``glob(...)`` over a config group's options needs Hydra's config loader, which asrkit's
    composition does not run: a ValueError naming it."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    for override in parsed:
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            raise ValueError(f"{override.input_line}: glob() sweeps are not supported; list "
                             f"the options (e.g. encoder=transformer,conformer)")
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0]


def swept_keys(overrides: list[str]) -> list[str]:
    """The keys that take more than one value (without an override's ``+``/``~``)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]


MAX_VALUE_CHARS = 40  # a swept value's part of a too long job directory name, at most
MAX_NAME_BYTES = 255  # a file name's limit on common file systems


def job_dir_name(number: int, job: list[str], keys: list[str]) -> str:
    """``<n>_<key>-<value>+...`` over the swept keys of one job (characters other than
    letters, digits and ``._`` in a value become ``-``); beyond 255 bytes each long value
    keeps its end (a path's file name) and 8 hex digits of its hash."""
    chosen = []
    for override in job:
        key, _, value = override.lstrip("+").partition("=")
        if key in keys:
            chosen.append((key, re.sub(r"[^A-Za-z0-9._]", "-", value), value))
    name = f"{number}_" + "+".join(f"{key}-{text}" for key, text, _ in chosen)
    if len(name.encode()) > MAX_NAME_BYTES:
        name = f"{number}_" + "+".join(f"{key}-{_short(text, value)}"
                                       for key, text, value in chosen)
    if len(name.encode()) > MAX_NAME_BYTES:  # many swept keys: the values' hash alone
        name = f"{number}_" + _digest("+".join(value for _, _, value in chosen))
    return name


def _short(text: str, whole: str) -> str:
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{_digest(whole)}-{text[-(MAX_VALUE_CHARS - 9):]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def plan_jobs(argv: list[str], multirun: bool,
              config_dirs: Sequence[str] = ()) -> list[tuple[list[str], dict]]:
    """(overrides, checked config) of every job; raises the config errors of the first bad
    job before anything runs. Without ``multirun`` it is the one job of ``argv``."""
    from asrkit.training.distributed import repeats_another_process

    if not repeats_another_process():
        return _plan_jobs(argv, multirun, config_dirs)
    config_log = logging.getLogger("asrkit.config")  # its notes: the launcher printed them
    level = config_log.level
    config_log.setLevel(logging.ERROR)
    try:
        return _plan_jobs(argv, multirun, config_dirs)
    finally:
        config_log.setLevel(level)


def _plan_jobs(argv: list[str], multirun: bool,
               config_dirs: Sequence[str]) -> list[tuple[list[str], dict]]:
    from asrkit.config import ConfigError, compose_train_config
    from asrkit.training.preflight import check_train_config, reject_hydra_overrides

    reject_hydra_overrides(argv)
    if not multirun:
        config = compose_train_config(argv, config_dirs)
        check_train_config(config)
        _note_ignored(argv, config)
        return [(argv, config)]
    keys = swept_keys(argv)
    jobs = []
    expanded = expand_sweep(argv)
    if not expanded:
        raise ConfigError(f"-m: the sweep over {', '.join(keys) or 'nothing'} has no run "
                          f"(an empty range or list of values)")
    for number, job in enumerate(expanded):
        exp_dir = compose_train_config(job, config_dirs)["exp_dir"]
        job = [o for o in job if o.lstrip("+").split("=", 1)[0] != "exp_dir"]
        job.append(f"exp_dir='{exp_dir}/{job_dir_name(number, job, keys)}'")
        config = compose_train_config(job, config_dirs)
        check_train_config(config)
        _note_ignored(job, config)
        jobs.append((job, config))
    return jobs


def _note_ignored(overrides: list[str], config: dict) -> None:
    """One stderr line per override the model ignores (asrkit.training.ignored_overrides), from
    the launching process only (not again from each DDP rank)."""
    from asrkit.training.distributed import repeats_another_process
    from asrkit.training.ignored_overrides import ignored_overrides

    if not repeats_another_process():
        for note in ignored_overrides(overrides, config):
            print(f"asrkit train: warning: {note}", file=sys.stderr)


def run_jobs(jobs: list[tuple[list[str], dict]], multirun: bool,
             config_dirs: Sequence[str] = ()) -> int:
    """Train every job in turn (``trainer.devices > 1``: K local DDP ranks, distributed.launch_local); returns
    the first non-zero exit status, or 0. A run stopped by a signal ends the sweep."""
    from asrkit.config.search_path import config_dir_args
    from asrkit.training.distributed import launch_local, under_torchrun
    from asrkit.training.run import run_training

    statuses = []
    for number, (argv, config) in enumerate(jobs):
        if multirun:
            print(f"asrkit train: run {number + 1}/{len(jobs)} into {config['exp_dir']}: "
                  f"{' '.join(argv)}", file=sys.stderr)
        devices = config["trainer"]["devices"]
        if devices > 1 and not under_torchrun():
            statuses.append(launch_local(devices, [*config_dir_args(list(config_dirs)), *argv]))
        else:
            statuses.append(run_training(config))
        if statuses[-1] in (130, 143):
            break
    stopped = statuses[-1] in (130, 143)
    failed = [jobs[i][1]["exp_dir"] for i, status in enumerate(statuses)
              if status and not (stopped and i == len(statuses) - 1)]
    if multirun and failed:
        print(f"asrkit train: {len(failed)} of {len(jobs)} runs failed: {', '.join(failed)}",
              file=sys.stderr)
    if multirun and stopped:
        print(f"asrkit train: the sweep was stopped during run {len(statuses)}/{len(jobs)} "
              f"({jobs[len(statuses) - 1][1]['exp_dir']}); {len(jobs) - len(statuses)} later "
              f"run(s) did not start (run the same command again to resume)", file=sys.stderr)
    return next((status for status in statuses if status), 0)
