"""Corpus preparers: each turns a corpus on disk into one manifest per split.

A preparer module defines
  `add_arguments(parser)`: its own command-line options (beyond --src/--out/--strict), and
  `prepare(src: Path | None, out: Path, summary: PrepareSummary, **options)
      -> dict[str, list[Utterance]]`: the utterances per split (manifest name without .jsonl).
`run_preparer` writes the manifests; `asrkit prepare <corpus>` is its command line.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from asrkit.data.manifest import ManifestError, Utterance, write_manifests
from asrkit.data.prepare.summary import PrepareSummary

PREPARERS = {
    "synth": "asrkit.data.prepare.synth",
    "librispeech": "asrkit.data.prepare.librispeech",
    "aishell": "asrkit.data.prepare.aishell",
    "kaldi": "asrkit.data.prepare.kaldi",
}


def load_preparer(corpus: str) -> ModuleType:
    if corpus not in PREPARERS:
        raise ValueError(f"unknown corpus '{corpus}' (known: {', '.join(PREPARERS)})")
    return importlib.import_module(PREPARERS[corpus])


class PreparedThenInterrupted(KeyboardInterrupt):
    """Ctrl-C came while the new manifests (and a preparer's files) were being put in place,
    and was held until they all were: the preparation is complete (``summary``)."""

    def __init__(self, summary: PrepareSummary) -> None:
        super().__init__("interrupted once the new manifests were in place (they are complete)")
        self.summary = summary


def run_preparer(corpus: str, src: Path | None, out: Path, **options) -> PrepareSummary:
    """Prepare `corpus` and write `<out>/<split>.jsonl` for every split it produced. A split
    of which no utterance was kept is not written: a manifest already there (an earlier,
    good run) is left as it was, and the summary says so. An utterance id twice, in one
    split or in two (the same recording in train and dev), is an error naming both places,
    raised before any manifest is written. A preparer that makes files (synth's audio)
    defines `install(out, splits)`, which moves those splits' new files into place and
    returns what undoes it, `committed(out)`, which marks the commit point, and
    `clean(out, committed)`, which ends its run (its `prepare` calls it itself when it
    fails). `install` runs once every manifest is written to its temp file, together with
    the renames over the old manifests and `committed` (asrkit.data.manifest
    .write_manifests: all or none, Ctrl-C held); then `clean`. A Ctrl-C held until the
    manifests were in place, or one during `clean` after them, comes out as
    PreparedThenInterrupted."""
    summary = PrepareSummary(corpus)
    module = load_preparer(corpus)
    out = Path(out)
    splits = module.prepare(src, out, summary, **options)
    written = [split for split, utterances in splits.items() if utterances]
    install, clean = getattr(module, "install", None), getattr(module, "clean", None)
    commit_point = getattr(module, "committed", None)
    committed = interrupted = False

    def after_rename() -> None:
        nonlocal committed
        if commit_point is not None:
            commit_point(out)
        committed = True

    try:
        try:
            _check_unique_ids(splits, out)
            write_manifests({out / f"{split}.jsonl": splits[split] for split in written},
                            before_rename=None if install is None
                            else lambda: install(out, written),
                            after_rename=after_rename)
        finally:
            if clean is not None:
                clean(out, committed)
    except KeyboardInterrupt:
        if not committed:
            raise
        interrupted = True
    for split in splits:
        if split not in written:
            summary.split(split).written = False
    if interrupted:
        raise PreparedThenInterrupted(summary)
    return summary


def _check_unique_ids(splits: dict[str, list[Utterance]], out: Path) -> None:
    first: dict[str, tuple[str, Utterance]] = {}  # id -> (split, utterance)
    for split, utterances in splits.items():
        for utt in utterances:
            if utt.id not in first:
                first[utt.id] = (split, utt)
                continue
            other_split, other = first[utt.id]
            where = (f"twice in {out / f'{split}.jsonl'}" if other_split == split else
                     f"in both {other_split} and {split}")
            raise ManifestError(f"utterance id '{utt.id}' {where}: {other.audio} and "
                                f"{utt.audio}")
