"""The decode directory of an experiment: writing one result, finding and reading them back.

    exp/<name>/decode/<set>/<method>/
        hyp.txt      <id> <hypothesis>   (as decoded, not normalised)
        ref.txt      <id> <reference>    (the manifest's text)
        wer.json     {"wer", "cer" (percent; null if undefined: errors but no reference tokens),
                      "sub", "del", "ins", "ref_words", "utts", "rtf", "char_sub",
                      "char_del", "char_ins", "ref_chars", "normalize", "missing_hyps",
                      "set", "method", "checkpoint", "manifest", "failed",
                      "audio_seconds", "decode": {beam, ctc_weight, ...}}
        errors.txt   per-utterance aligned REF/HYP (sclite's alignment, pralign style) after
                     normalisation
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrkit.scoring.normalize import TextNormalizer
from asrkit.scoring.wer import (
    format_errors_file,
    json_safe,
    read_text,
    score_texts,
    write_text,
)

DECODE_DIR = "decode"
WER_FILE = "wer.json"


def method_dir(exp_dir: str | Path, set_name: str, method: str) -> Path:
    return Path(exp_dir) / DECODE_DIR / set_name / method


def write_decode_result(out_dir: str | Path, refs: Mapping[str, str], hyps: Mapping[str, str],
                        normalizer: TextNormalizer, rtf: float | None = None,
                        extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score ``hyps`` against ``refs`` and write the four files; returns wer.json's dict
    (an undefined rate is inf there and null in the file)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = score_texts(refs, hyps, normalizer)
    summary = {**result.summary(), "rtf": None if rtf is None else round(rtf, 5),
               **(extra or {})}
    write_text(out_dir / "hyp.txt", {uid: hyps.get(uid, "") for uid in refs})
    write_text(out_dir / "ref.txt", refs)
    (out_dir / "errors.txt").write_text(format_errors_file(result), encoding="utf-8")
    _write_atomic(out_dir / WER_FILE, json.dumps(json_safe(summary), indent=2,
                                                 ensure_ascii=False, allow_nan=False) + "\n")
    return summary


@dataclass(frozen=True)
class DecodeRun:
    """One scored (experiment, set, method) found on disk."""

    exp_dir: Path
    set_name: str
    method: str
    summary: dict[str, Any]   # wer.json

    @property
    def path(self) -> Path:
        return method_dir(self.exp_dir, self.set_name, self.method)


def find_runs(exp_dir: str | Path, sets: Sequence[str] | None = None,
              methods: Sequence[str] | None = None) -> list[DecodeRun]:
    """Every decode/<set>/<method>/wer.json of an experiment (optionally only some sets and
    methods), sorted by set then method."""
    root = Path(exp_dir) / DECODE_DIR
    runs = []
    for wer_file in sorted(root.glob(f"*/*/{WER_FILE}")):
        method, set_name = wer_file.parent.name, wer_file.parent.parent.name
        if (sets and set_name not in sets) or (methods and method not in methods):
            continue
        try:
            summary = json.loads(wer_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{wer_file}: not valid JSON ({e})") from None
        runs.append(DecodeRun(Path(exp_dir), set_name, method, summary))
    return runs


def utterance_errors(run: DecodeRun, unit: str = "word") -> dict[str, tuple[int, int]]:
    """Per utterance (errors, reference tokens) at ``unit`` "word" or "char", rescored from
    hyp.txt/ref.txt with the normalisation the run was scored with (for paired tests)."""
    normalizer = TextNormalizer.from_dict(run.summary.get("normalize"))
    result = score_texts(read_text(run.path / "ref.txt"), read_text(run.path / "hyp.txt"),
                         normalizer)
    counts = result.words if unit == "word" else result.chars
    return {u.id: (u.errors, len(u.ref)) for u in counts.utterances}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
