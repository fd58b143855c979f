"""AISHELL-1 (Mandarin, 178 h) to train/dev/test manifests.

    asrkit prepare aishell --src /corpora/aishell --out data/aishell

Layout (https://www.openslr.org/33), --src being the directory holding `data_aishell/` or
`data_aishell/` itself:
  data_aishell/transcript/aishell_transcript_v0.8.txt   `<utt_id> <words separated by spaces>`
  data_aishell/wav/{train,dev,test}/<speaker>/<utt_id>.wav

The release ships `wav/` as one `<speaker>.tar.gz` per speaker. This preparer does not
modify the corpus: if a tarball has not been extracted it stops and says how to extract:
`cd data_aishell/wav && for f in *.tar.gz; do tar -xzf "$f"; done`.

Text: the spaces between words are removed ("而 对 楼市" -> "而对楼市"), as WeNet and
ESPnet do for character modelling. speaker = the `<speaker>` directory. Wavs without a
transcript line are skipped as "no transcript" (the release has some); transcript lines
whose wav is in no split are ignored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asrkit.data.manifest import Utterance
from asrkit.data.prepare.checks import checked_utterance
from asrkit.data.prepare.kaldi import read_kaldi_table
from asrkit.data.prepare.summary import PrepareSummary

SPLITS = ("train", "dev", "test")
TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """AISHELL-1 has no corpus-specific options."""


def prepare(src: Path | None, out: Path, summary: PrepareSummary) -> dict[str, list[Utterance]]:
    root = _corpus_root(src)
    wav_dir = root / "wav"
    _check_extracted(wav_dir)
    texts = {utt_id: "".join(words.split())
             for utt_id, words in read_kaldi_table(root / TRANSCRIPT).items()}
    splits = {}
    for split in SPLITS:
        if not (wav_dir / split).is_dir():
            continue
        summary.split(split)
        utterances = []
        for wav in sorted((wav_dir / split).glob("*/*.wav"), key=lambda p: p.stem):
            utt = checked_utterance(summary, split, wav.stem, wav, texts.get(wav.stem),
                                    speaker=wav.parent.name)
            if utt is not None:
                utterances.append(utt)
        splits[split] = utterances
    return splits


def _check_extracted(wav_dir: Path) -> None:
    """Fail if no split is extracted or a speaker tarball has no extracted directory."""
    extracted = {spk.name for split in SPLITS if (wav_dir / split).is_dir()
                 for spk in (wav_dir / split).iterdir() if spk.is_dir()}
    pending = [t.name for t in sorted(wav_dir.glob("*.tar.gz"))
               if t.name[: -len(".tar.gz")] not in extracted]
    if pending:
        raise FileNotFoundError(
            f"{wav_dir}: {len(pending)} speaker tarball(s) not extracted (e.g. {pending[0]}); "
            f"extract them with: cd {wav_dir} && for f in *.tar.gz; do tar -xzf \"$f\"; done")
    if not extracted:
        raise FileNotFoundError(f"{wav_dir}: no speaker directories under {'/'.join(SPLITS)}/")


def _corpus_root(src: Path | None) -> Path:
    if src is None:
        raise FileNotFoundError("--src is required: the directory holding data_aishell/")
    src = Path(src).absolute()
    for root in (src / "data_aishell", src):
        if (root / TRANSCRIPT).is_file() and (root / "wav").is_dir():
            return root
    raise FileNotFoundError(
        f"{src}: not an AISHELL-1 copy (expected data_aishell/{TRANSCRIPT} and data_aishell/wav/)")
