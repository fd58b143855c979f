"""Tiny LibriSpeech- and AISHELL-1-shaped corpora, built from synth speech, for recipe tests.

The directory layouts are the official ones; the audio is our synthetic English speech and,
for AISHELL, the transcripts are Chinese characters assigned one per English word (the
pipeline, not the acoustics, is under test).
"""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from asrkit.data.manifest import Utterance, read_manifest
from asrkit.data.prepare import run_preparer

HANZI = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研"


def synth_utterances(work: Path, num_utts: int, seed: int = 0) -> list[Utterance]:
    """Real synthetic utterances (all splits together), written under `work`."""
    run_preparer("synth", None, work, num_utts=num_utts, seed=seed, noise_snr=None)
    return [u for split in ("train", "dev", "test", "test_unseen")
            for u in read_manifest(work / f"{split}.jsonl")]


def make_librispeech_tree(root: Path, subsets: dict[str, int], work: Path) -> Path:
    """`root/LibriSpeech/<subset>/<spk>/<chapter>/` with flac files and .trans.txt."""
    utterances = iter(synth_utterances(work, sum(subsets.values()) + 3))
    for s, (subset, count) in enumerate(subsets.items()):
        for i in range(count):
            utt = next(utterances)
            speaker, chapter = 100 + 10 * s + i % 2, 1000 + s
            chapter_dir = root / "LibriSpeech" / subset / str(speaker) / str(chapter)
            chapter_dir.mkdir(parents=True, exist_ok=True)
            utt_id = f"{speaker}-{chapter}-{i:04d}"
            audio, rate = sf.read(utt.audio)
            sf.write(chapter_dir / f"{utt_id}.flac", audio, rate)
            with (chapter_dir / f"{speaker}-{chapter}.trans.txt").open("a") as f:
                f.write(f"{utt_id} {utt.text.upper()}\n")
    return root / "LibriSpeech"


def make_aishell_tree(root: Path, splits: dict[str, int], work: Path) -> Path:
    """`root/data_aishell/{transcript,wav/<split>/<spk>}` as the official release, extracted."""
    utterances = iter(synth_utterances(work, sum(splits.values()) + 3))
    vocabulary: dict[str, str] = {}
    lines = []
    for s, (split, count) in enumerate(splits.items()):
        for i in range(count):
            utt = next(utterances)
            speaker = f"S{s * 2 + i % 2 + 2:04d}"
            utt_id = f"BAC009{speaker}W{i:04d}"
            wav_dir = root / "data_aishell" / "wav" / split / speaker
            wav_dir.mkdir(parents=True, exist_ok=True)
            audio, rate = sf.read(utt.audio)
            sf.write(wav_dir / f"{utt_id}.wav", audio, rate)
            words = [vocabulary.setdefault(w, HANZI[len(vocabulary) % len(HANZI)])
                     for w in utt.text.split()]
            lines.append(f"{utt_id} {' '.join(words)}")
    transcript = root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True, exist_ok=True)
    transcript.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return root / "data_aishell"
