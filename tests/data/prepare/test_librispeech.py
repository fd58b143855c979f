"""LibriSpeech preparer on a tiny tree with the official layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from asrkit.bin.prepare import main as prepare_main
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.data.prepare.checks import (
    SKIP_EMPTY_AUDIO,
    SKIP_EMPTY_TEXT,
    SKIP_MISSING_AUDIO,
    SKIP_NO_TEXT,
    SKIP_UNREADABLE_AUDIO,
)


@pytest.fixture
def corpus(tmp_path: Path, audio, lines) -> dict:
    """<tmp>/LibriSpeech/{dev-clean,test-other}/<speaker>/<chapter>/; returns real durations."""
    root = tmp_path / "LibriSpeech"
    chapter = root / "dev-clean" / "84" / "121123"
    lines(chapter / "84-121123.trans.txt", [
        "84-121123-0000 GO DO YOU HEAR",
        "84-121123-0001 BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED",
        "84-121123-0002",  # empty transcript
        "84-121123-0003 A CORRUPT FILE",
        "84-121123-0005 THIS LINE HAS NO FLAC",
    ])
    durations = {
        "84-121123-0000": audio.tone(chapter / "84-121123-0000.flac", 0.5),
        "84-121123-0001": audio.tone(chapter / "84-121123-0001.flac", 0.83),
    }
    audio.tone(chapter / "84-121123-0002.flac", 0.3)
    audio.corrupt(chapter / "84-121123-0003.flac")
    audio.tone(chapter / "84-121123-0006.flac", 0.4)  # no transcript line
    other = root / "dev-clean" / "174" / "168635"
    lines(other / "174-168635.trans.txt", ["174-168635-0000 HE HAD NEVER BEEN FATHER LOVER"])
    durations["174-168635-0000"] = audio.tone(other / "174-168635-0000.flac", 0.6)
    test = root / "test-other" / "1688" / "142285"
    lines(test / "1688-142285.trans.txt", ["1688-142285-0000 THERE'S IRON THEY SAY"])
    durations["1688-142285-0000"] = audio.tone(test / "1688-142285-0000.flac", 0.7)
    (root / "README.TXT").write_text("LibriSpeech ASR corpus\n")
    return durations


DEV_SKIPS = [
    ("84-121123-0002", SKIP_EMPTY_TEXT),
    ("84-121123-0003", SKIP_UNREADABLE_AUDIO),
    ("84-121123-0005", SKIP_MISSING_AUDIO),
    ("84-121123-0006", SKIP_NO_TEXT),
]


def test_every_subset_gets_a_manifest(tmp_path: Path, corpus: dict) -> None:
    out = tmp_path / "out"
    summary = run_preparer("librispeech", tmp_path / "LibriSpeech", out)
    assert sorted(summary.splits) == ["dev-clean", "test-other"]
    assert summary.splits["dev-clean"].kept == 3
    assert summary.splits["dev-clean"].skipped == DEV_SKIPS
    assert summary.splits["test-other"].kept == 1
    assert summary.splits["test-other"].skipped == []
    assert sorted(p.name for p in out.iterdir()) == ["dev-clean.jsonl", "test-other.jsonl"]
    dev = read_manifest(out / "dev-clean.jsonl")
    assert [u.id for u in dev] == ["174-168635-0000", "84-121123-0000", "84-121123-0001"]
    assert len(read_manifest(out / "test-other.jsonl")) == 1


def test_kept_utterance_fields(tmp_path: Path, corpus: dict) -> None:
    run_preparer("librispeech", tmp_path / "LibriSpeech", tmp_path / "out")
    utts = {u.id: u for u in read_manifest(tmp_path / "out" / "dev-clean.jsonl")}
    utt = utts["84-121123-0001"]
    assert utt.text == "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED"  # case kept
    assert utt.speaker == "84"
    assert utt.duration == pytest.approx(corpus["84-121123-0001"], abs=1e-3)
    assert Path(utt.audio).is_file() and Path(utt.audio).name == "84-121123-0001.flac"
    assert utt.start is None and utt.end is None
    other = read_manifest(tmp_path / "out" / "test-other.jsonl")[0]
    assert other.text == "THERE'S IRON THEY SAY" and other.speaker == "1688"


def test_src_may_be_the_parent_of_librispeech(tmp_path: Path, corpus: dict) -> None:
    summary = run_preparer("librispeech", tmp_path, tmp_path / "out")
    assert {name: s.kept for name, s in summary.splits.items()} == {"dev-clean": 3, "test-other": 1}


def test_subsets_restricts_the_manifests(tmp_path: Path, corpus: dict) -> None:
    out = tmp_path / "out"
    summary = run_preparer("librispeech", tmp_path, out, subsets=["test-other"])
    assert list(summary.splits) == ["test-other"]
    assert [p.name for p in out.iterdir()] == ["test-other.jsonl"]
    with pytest.raises(FileNotFoundError, match="train-clean-100"):
        run_preparer("librispeech", tmp_path, out, subsets=["train-clean-100"])


def test_an_empty_flac_and_one_written_as_a_stream_are_told_apart(
        tmp_path: Path, audio, lines) -> None:
    """total_samples = 0 in STREAMINFO means "unknown" (a stream) and is all an empty FLAC
    can say: a file with no audio frame after its metadata is empty, the other one
    unreadable (libsndfile cannot read it to its end)."""
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "84" / "121123"
    lines(chapter / "84-121123.trans.txt", ["84-121123-0000 GO DO YOU HEAR",
                                            "84-121123-0001 BUT IN LESS THAN FIVE MINUTES",
                                            "84-121123-0002 THE STAIRCASE GROANED"])
    audio.empty(chapter / "84-121123-0000.flac")
    audio.streamed(chapter / "84-121123-0001.flac", 0.7)
    assert sf.info(str(chapter / "84-121123-0001.flac")).frames == 2**63 - 1  # no length
    audio.tone(chapter / "84-121123-0002.flac", 0.5)
    summary = run_preparer("librispeech", tmp_path, tmp_path / "out")
    assert summary.splits["dev-clean"].skipped == [("84-121123-0000", SKIP_EMPTY_AUDIO),
                                                   ("84-121123-0001", SKIP_UNREADABLE_AUDIO)]
    [utt] = read_manifest(tmp_path / "out" / "dev-clean.jsonl")
    assert utt.id == "84-121123-0002" and utt.duration == 0.5


def test_cli_strict_fails_when_something_was_skipped(tmp_path: Path, corpus: dict, capsys) -> None:
    args = ["librispeech", "--src", str(tmp_path), "--out", str(tmp_path / "out")]
    assert prepare_main(args) == 0
    assert "kept 4, skipped 4" in capsys.readouterr().out
    assert prepare_main([*args, "--strict"]) == 1
    assert "--strict and 4 skipped" in capsys.readouterr().err
    assert prepare_main([*args, "--strict", "--subsets", "test-other"]) == 0


def test_cli_missing_src_is_a_clear_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no" / "LibriSpeech"
    assert prepare_main(["librispeech", "--src", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and len(err.strip().splitlines()) == 1
    assert prepare_main(["librispeech", "--out", str(tmp_path / "o")]) == 2
    assert "--src is required" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_main(["librispeech", "--src", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert f"{empty}: no LibriSpeech subsets" in capsys.readouterr().err


def test_an_id_in_two_chapters_names_both(tmp_path: Path, corpus: dict, audio, capsys) -> None:
    """A flac copied into another chapter directory must not silently replace the one its
    transcript belongs to: prepare stops naming both chapters."""
    root = tmp_path / "LibriSpeech"
    audio.tone(root / "dev-clean/84/999999/84-121123-0000.flac", 0.5)
    out = tmp_path / "out"
    assert prepare_main(["librispeech", "--src", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "utterance 84-121123-0000 is in two chapter directories" in err
    assert "84/121123" in err and "84/999999" in err and len(err.strip().splitlines()) == 1
    assert not (out / "dev-clean.jsonl").exists()


def test_an_out_that_is_a_file_is_one_line_naming_it(tmp_path: Path, corpus: dict,
                                                     capsys) -> None:
    out = tmp_path / "afile"
    out.write_text("mine\n")
    assert prepare_main(["librispeech", "--src", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"asrkit prepare librispeech: --out {out} is a file, "
                                       "not a directory\n")
    assert out.read_text() == "mine\n"
    assert prepare_main(["librispeech", "--src", str(tmp_path), "--out", str(out / "sub")]) == 2
    assert capsys.readouterr().err == (f"asrkit prepare librispeech: --out {out / 'sub'} would "
                                       f"be inside {out}, which is a file\n")
