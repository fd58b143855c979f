"""The decode directory of an experiment: writing one result, finding and reading them back.

    exp/<name>/decode/<checkpoint>/<set>/<method>[-<setting><value>...]/
        hyp.txt      <id> <hypothesis>   (as decoded, not normalised)
        ref.txt      <id> <reference>    (the manifest's text)
        wer.json     {"wer", "cer" (percent; null if undefined: errors but no reference tokens),
                      "sub", "del", "ins", "ref_words", "utts", "rtf", "char_sub",
                      "char_del", "char_ins", "ref_chars", "normalize", "missing_hyps",
                      "set", "method", "checkpoint", "checkpoint_sha256" (its hash file's
                      hash: a result whose checkpoint was written again since is left
                      out), "exp_dir", "manifest", "failed", "audio_seconds",
                      "decode": {beam, ctc_weight, ...}}
        errors.txt   per-utterance aligned REF/HYP (sclite's alignment, pralign style) after
                     normalisation

A result is keyed by the checkpoint (its file stem: ``avg_3``, ``epoch_6``) and the search
settings (``attention_rescoring-beam20-ctc_weight0.5-top_k20``; null settings left out), so
decoding again with another checkpoint or beam keeps both results; the same checkpoint and
settings overwrite their own result. Results of the layout before (``decode/<set>/<method>/``)
are still read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrkit.atomic_text import write_error, write_text_atomic
from asrkit.checkpoint_io import recorded_hash
from asrkit.experiment_dir import ExperimentDir
from asrkit.scoring.kaldi_text import read_text, write_text
from asrkit.scoring.normalize import TextNormalizer
from asrkit.scoring.wer import format_errors_file, json_safe, score_texts

log = logging.getLogger(__name__)

WER_FILE = "wer.json"
# a rate's error counts and reference tokens in wer.json
RATE_COUNTS = {"wer": ("sub", "del", "ins", "ref_words"),
               "cer": ("char_sub", "char_del", "char_ins", "ref_chars")}
# settings a decode leaves out of its directory name and wer.json at their default value
# (asrkit.decoding.precision: fp32 decodes keep the names they had before precision existed)
IMPLICIT_SETTINGS = {"precision": "fp32"}


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):  # every digit (0.3 and 0.3000001 apart), 2.0 as 2
        return repr(value).removesuffix(".0")
    return re.sub(r"[^A-Za-z0-9._+]", "_", str(value))


def setting_value(settings: Mapping[str, Any], key: str) -> Any:
    """A decode's value of ``key``, an implicit default filled in (None: not set)."""
    return settings.get(key, IMPLICIT_SETTINGS.get(key))


def result_dir_name(method: str, settings: Mapping[str, Any]) -> str:
    """``<method>[-<setting><value>...]`` over the settings that are not null."""
    return "-".join([method, *(f"{k}{_value_text(v)}" for k, v in settings.items()
                               if v is not None)])


def checkpoint_dir_name(checkpoint: str) -> str:
    """The directory of a checkpoint's results: its stem (``avg_3``, ``epoch_6``) for one in
    the experiment (labelled relative to it), and the stem and a hash of the path for one
    outside it (labelled by its absolute path), which may share a stem with the experiment's
    own (``last``)."""
    stem = Path(checkpoint).stem
    if not Path(checkpoint).is_absolute():
        return stem
    return f"{stem}-{hashlib.sha1(checkpoint.encode()).hexdigest()[:8]}"


def result_dir(decode_root: str | Path, checkpoint: str, set_name: str, method: str,
               settings: Mapping[str, Any]) -> Path:
    """Where one decode's result goes: ``<decode_root>/<checkpoint_dir_name>/<set>/<name>``."""
    return (Path(decode_root) / checkpoint_dir_name(checkpoint) / set_name
            / result_dir_name(method, settings))


def write_decode_result(out_dir: str | Path, refs: Mapping[str, str], hyps: Mapping[str, str],
                        normalizer: TextNormalizer, rtf: float | None = None,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score ``hyps`` against ``refs`` and write the four files; returns wer.json's dict
    (an undefined rate is inf there and null in the file)."""
    out_dir = Path(out_dir)
    result = score_texts(refs, hyps, normalizer)
    summary = {**result.summary(), "rtf": None if rtf is None else round(rtf, 5),
               **(extra or {})}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "hyp.txt", {uid: hyps.get(uid, "") for uid in refs})
        write_text(out_dir / "ref.txt", refs)
    except OSError as e:  # a full disk: the error names no file
        raise write_error(out_dir, e) from None
    write_text_atomic(out_dir / "errors.txt", format_errors_file(result))
    write_text_atomic(out_dir / WER_FILE, json.dumps(json_safe(summary), indent=2,
                                                 ensure_ascii=False, allow_nan=False) + "\n")
    return summary


@dataclass(frozen=True)
class DecodeRun:
    """One scored (experiment, checkpoint, set, method, settings) found on disk."""

    exp_dir: Path
    path: Path                # the result's directory
    set_name: str
    method: str
    summary: dict[str, Any]   # wer.json

    @property
    def checkpoint(self) -> str | None:
        return self.summary.get("checkpoint")

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.summary.get("decode") or {})

    def number(self, key: str) -> float | None:
        """wer.json's ``key`` (None when absent or null); ValueError naming the file when
        it is not a number."""
        value = self.summary.get(key)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            return value
        raise ValueError(f"{self.path / WER_FILE}: {key} is not a number ({value!r})")

    def rate(self, metric: str) -> float | None:
        """``wer`` or ``cer`` in percent, unrounded: from the error counts where wer.json
        has them and reference tokens, else its (rounded, or null) rate."""
        *errors, ref = (self.number(key) for key in RATE_COUNTS[metric])
        if None in errors or not ref:
            return self.number(metric)
        return 100.0 * sum(errors) / ref


def find_runs(exp_dir: str | Path, sets: Sequence[str] | None = None,
              methods: Sequence[str] | None = None,
              checkpoint: str | None = None,
              left_out: list[str] | None = None) -> list[DecodeRun]:
    """Every scored result under ``exp_dir/decode`` (optionally only some sets, methods or
    one checkpoint, by name as recorded or by its directory's name: the stem, with a hash
    for one from outside the experiment), sorted by checkpoint, set, method. A result in
    the layout before (``decode/<set>/<method>/``) is left out, with a warning, where one in
    today's layout has the same checkpoint, set, method and settings. Why a result is left
    out (that, or a checkpoint written again since) is logged as a warning, or appended to
    ``left_out`` when the caller passes a list (and says it once itself)."""
    say = log.warning if left_out is None else (
        lambda message, *args: left_out.append(message % args))
    root = ExperimentDir(exp_dir).decode_dir
    runs = []
    files = [(False, f) for f in sorted(root.glob(f"*/*/*/{WER_FILE}"))]
    files += [(True, f) for f in sorted(root.glob(f"*/*/{WER_FILE}"))]  # the layout before
    current_hash: dict[str, str | None] = {}  # per checkpoint: its hash file read once
    keys = set()  # (checkpoint, set, method, settings) of the results in today's layout
    for old_layout, wer_file in files:
        summary = read_summary(wer_file.parent)
        method = str(summary.get("method") or wer_file.parent.name)
        set_name = str(summary.get("set") or wer_file.parent.parent.name)
        recorded = summary.get("checkpoint")
        if (sets and set_name not in sets) or (methods and method not in methods):
            continue
        if checkpoint and not _same_checkpoint(checkpoint, recorded):
            continue
        key = (str(recorded), set_name, method,
               json.dumps(summary.get("decode") or {}, sort_keys=True))
        if old_layout and key in keys:
            say("%s: an older result of the same checkpoint and settings as one in "
                "decode/%s/; left out", wer_file.parent, checkpoint_dir_name(str(recorded)))
            continue
        keys.add(key)
        decoded = summary.get("checkpoint_sha256")
        if recorded and decoded and recorded not in current_hash:
            path = ExperimentDir(exp_dir).checkpoint_path(recorded)
            current_hash[recorded] = recorded_hash(path) if path is not None else None
        now = current_hash.get(recorded) if decoded else None
        # the checkpoint was written again since (a result without a recorded hash, or a
        # checkpoint gone or without a hash file: not known to have changed)
        if now is not None and now != decoded:
            say("%s: decoded with an earlier %s (the checkpoint was written again since, "
                "e.g. by asrkit average); left out until decoded again", wer_file.parent,
                recorded)
            continue
        runs.append(DecodeRun(Path(exp_dir), wer_file.parent, set_name, method, summary))
    return sorted(runs, key=lambda r: (str(r.checkpoint), r.set_name, r.method, str(r.path)))


def _same_checkpoint(asked: str, recorded: Any) -> bool:
    """Whether ``asked`` names the recorded checkpoint: as recorded, or its results'
    directory name (``epoch_4``, ``epoch_4.pt`` for ``checkpoints/epoch_4.pt``), or, for a
    checkpoint outside the experiment (recorded by its absolute path), the path decode was
    given (``outside.pt`` from the directory it ran in)."""
    if recorded is None:
        return False
    recorded = str(recorded)
    if Path(recorded).is_absolute() and str(Path(asked).resolve()) == recorded:
        return True
    return asked == recorded or checkpoint_dir_name(recorded) in (
        asked, checkpoint_dir_name(asked))


def read_summary(result_dir: str | Path) -> dict[str, Any]:
    """A result directory's wer.json; ValueError naming it when it is not a JSON object
    (OSError when it cannot be read)."""
    wer_file = Path(result_dir) / WER_FILE
    try:
        summary = json.loads(wer_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{wer_file}: not valid JSON ({e})") from None
    if not isinstance(summary, dict):  # bad file content, not a caller's type
        raise ValueError(f"{wer_file}: not a JSON object")  # noqa: TRY004
    return summary


def utterance_errors(run: DecodeRun, unit: str = "word") -> dict[str, tuple[int, int]]:
    """Per utterance (errors, reference tokens) at ``unit`` "word" or "char", rescored from
    hyp.txt/ref.txt with the normalisation the run was scored with (for paired tests)."""
    normalizer = TextNormalizer.from_dict(run.summary.get("normalize"))
    refs, hyps = read_text(run.path / "ref.txt"), read_text(run.path / "hyp.txt")
    try:
        result = score_texts(refs, hyps, normalizer)
    except ValueError as e:  # hypothesis ids without a reference
        raise ValueError(f"{run.path}: {e}") from None
    counts = result.words if unit == "word" else result.chars
    return {u.id: (u.errors, len(u.ref)) for u in counts.utterances}
