"""LibriSpeech (extracted official tarballs) to one manifest per subset.

    asrkit prepare librispeech --src /corpora/LibriSpeech --out data/librispeech
    asrkit prepare librispeech --src /corpora --out data/librispeech --subsets dev-clean test-clean

Layout (https://www.openslr.org/12): `<src>/<subset>/<speaker>/<chapter>/` holds
`<speaker>-<chapter>.trans.txt` (lines `<speaker>-<chapter>-<utt> <TRANSCRIPT>`) and
`<speaker>-<chapter>-<utt>.flac`. --src may be the `LibriSpeech/` directory or its parent.
Every directory with that structure is a subset and gives `<subset>.jsonl` (train-clean-100,
dev-clean, test-other, ...); --subsets restricts them.

Text is kept exactly as transcribed: upper case, apostrophes kept, no normalisation
(lower-casing, if wanted, belongs to the tokenizer's normaliser). speaker = speaker id.
A flac without a transcript line is skipped as "no transcript"; a transcript line without
its flac as "missing audio".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asrkit.data.manifest import Utterance
from asrkit.data.prepare.checks import checked_utterance
from asrkit.data.prepare.kaldi import read_kaldi_table
from asrkit.data.prepare.summary import PrepareSummary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--subsets", nargs="+", default=None, metavar="SUBSET",
                        help="subsets to prepare, e.g. train-clean-100 dev-clean (default: all)")


def find_subsets(root: Path) -> list[str]:
    """Names of the directories under `root` laid out as `<speaker>/<chapter>/*.trans.txt`."""
    return sorted(
        d.name for d in root.iterdir()
        if d.is_dir() and (next(d.glob("*/*/*.trans.txt"), None) or next(d.glob("*/*/*.flac"), None))
    )


def prepare(
    src: Path | None, out: Path, summary: PrepareSummary, subsets: list[str] | None = None,
) -> dict[str, list[Utterance]]:
    root = _corpus_root(src)
    found = find_subsets(root)
    if not found:
        raise FileNotFoundError(
            f"{root}: no LibriSpeech subsets (expected <subset>/<speaker>/<chapter>/*.trans.txt)")
    wanted = found if subsets is None else [
        name for arg in subsets for name in arg.split(",") if name  # "a,b" works like "a b"
    ]
    unknown = [s for s in wanted if s not in found]
    if unknown:
        raise FileNotFoundError(f"{root}: subset(s) {', '.join(unknown)} not found "
                                f"(found: {', '.join(found)})")
    return {subset: _prepare_subset(root / subset, summary) for subset in wanted}


def _prepare_subset(subset_dir: Path, summary: PrepareSummary) -> list[Utterance]:
    split = subset_dir.name
    summary.split(split)
    texts: dict[str, str] = {}
    chapter_of: dict[str, Path] = {}  # utterance id -> its chapter directory
    for chapter_dir in sorted(d for d in subset_dir.glob("*/*") if d.is_dir()):
        ids = {flac.stem for flac in chapter_dir.glob("*.flac")}
        for trans in chapter_dir.glob("*.trans.txt"):
            chapter_texts = read_kaldi_table(trans)
            texts.update(chapter_texts)
            ids.update(chapter_texts)
        for utt_id in sorted(ids):
            if chapter_of.setdefault(utt_id, chapter_dir) != chapter_dir:
                raise ValueError(f"{subset_dir}: utterance {utt_id} is in two chapter "
                                 f"directories: {chapter_of[utt_id]} and {chapter_dir}")
    utterances = []
    for utt_id in sorted(chapter_of):
        chapter_dir = chapter_of[utt_id]
        utt = checked_utterance(summary, split, utt_id, chapter_dir / f"{utt_id}.flac",
                                texts.get(utt_id), speaker=chapter_dir.parent.name)
        if utt is not None:
            utterances.append(utt)
    return utterances


def _corpus_root(src: Path | None) -> Path:
    if src is None:
        raise FileNotFoundError("--src is required: the LibriSpeech directory (or its parent)")
    src = Path(src).absolute()
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: LibriSpeech directory not found")
    return src / "LibriSpeech" if (src / "LibriSpeech").is_dir() else src
