"""AISHELL-1 preparer on a tiny tree with the official (extracted) layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.bin.prepare import main as prepare_main
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.data.prepare.checks import (
    SKIP_EMPTY_AUDIO,
    SKIP_EMPTY_TEXT,
    SKIP_NO_TEXT,
    SKIP_TRUNCATED_AUDIO,
    SKIP_UNREADABLE_AUDIO,
)


@pytest.fixture
def corpus(tmp_path: Path, audio, lines) -> dict:
    """<tmp>/aishell/data_aishell/{transcript,wav/{train,dev,test}}; returns real durations."""
    root = tmp_path / "aishell" / "data_aishell"
    lines(root / "transcript" / "aishell_transcript_v0.8.txt", [
        "BAC009S0002W0122 而 对 楼市 成交 抑制 作用 最 大 的 限 购",
        "BAC009S0002W0123 也 成为 地方 政府 的 眼中 钉",
        "BAC009S0002W0124",  # empty transcript
        "BAC009S0002W0125 一 个 坏 文件",
        "BAC009S0002W0126 一 个 空 文件",
        "BAC009S0002W0128 一 个 截断 的 文件",
        "BAC009S0724W0121 广州 市 房地产 中介 协会 分析",
        "BAC009S0764W0121 甚至 出现 交易 几乎 停滞 的 情况",
        "BAC009S0999W0001 这 条 没有 音频",  # in no split: ignored
    ])
    train = root / "wav" / "train" / "S0002"
    durations = {
        "BAC009S0002W0122": audio.tone(train / "BAC009S0002W0122.wav", 0.9),
        "BAC009S0002W0123": audio.tone(train / "BAC009S0002W0123.wav", 0.45),
        "BAC009S0724W0121": audio.tone(root / "wav/dev/S0724/BAC009S0724W0121.wav", 0.5),
        "BAC009S0764W0121": audio.tone(root / "wav/test/S0764/BAC009S0764W0121.wav", 0.6),
    }
    audio.tone(train / "BAC009S0002W0124.wav", 0.3)
    audio.corrupt(train / "BAC009S0002W0125.wav")
    audio.empty(train / "BAC009S0002W0126.wav")
    audio.tone(train / "BAC009S0002W0127.wav", 0.3)  # no transcript line
    audio.truncated(train / "BAC009S0002W0128.wav", 0.4)
    return durations


def test_train_dev_test_manifests(tmp_path: Path, corpus: dict) -> None:
    out = tmp_path / "out"
    summary = run_preparer("aishell", tmp_path / "aishell", out)
    assert {name: s.kept for name, s in summary.splits.items()} == {"train": 2, "dev": 1, "test": 1}
    assert summary.splits["train"].skipped == [
        ("BAC009S0002W0124", SKIP_EMPTY_TEXT),
        ("BAC009S0002W0125", SKIP_UNREADABLE_AUDIO),
        ("BAC009S0002W0126", SKIP_EMPTY_AUDIO),
        ("BAC009S0002W0127", SKIP_NO_TEXT),
        ("BAC009S0002W0128", SKIP_TRUNCATED_AUDIO),
    ]
    assert summary.splits["dev"].skipped == summary.splits["test"].skipped == []
    assert sorted(p.name for p in out.iterdir()) == ["dev.jsonl", "test.jsonl", "train.jsonl"]
    train = read_manifest(out / "train.jsonl")
    assert [u.id for u in train] == ["BAC009S0002W0122", "BAC009S0002W0123"]
    assert len(read_manifest(out / "dev.jsonl")) == len(read_manifest(out / "test.jsonl")) == 1


def test_kept_utterance_has_no_spaces_between_words(tmp_path: Path, corpus: dict) -> None:
    run_preparer("aishell", tmp_path / "aishell", tmp_path / "out")
    utt = read_manifest(tmp_path / "out" / "train.jsonl")[0]
    assert utt.id == "BAC009S0002W0122"
    assert utt.text == "而对楼市成交抑制作用最大的限购"
    assert utt.speaker == "S0002"
    assert utt.duration == pytest.approx(corpus["BAC009S0002W0122"], abs=1e-3)
    assert Path(utt.audio).is_file() and Path(utt.audio).parent.name == "S0002"
    dev = read_manifest(tmp_path / "out" / "dev.jsonl")[0]
    assert (dev.text, dev.speaker) == ("广州市房地产中介协会分析", "S0724")


def test_src_may_be_data_aishell_itself(tmp_path: Path, corpus: dict) -> None:
    summary = run_preparer("aishell", tmp_path / "aishell" / "data_aishell", tmp_path / "out")
    assert summary.total_kept == 4 and summary.total_skipped == 5


def test_unextracted_tarballs_are_a_clear_error(tmp_path: Path, lines) -> None:
    root = tmp_path / "data_aishell"
    lines(root / "transcript" / "aishell_transcript_v0.8.txt", ["BAC009S0002W0122 而 对"])
    (root / "wav").mkdir()
    for speaker in ("S0002", "S0003"):
        (root / "wav" / f"{speaker}.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"2 speaker tarball\(s\) not extracted.*tar -xzf"):
        run_preparer("aishell", tmp_path, tmp_path / "out")


def test_partly_extracted_tarballs_are_an_error(tmp_path: Path, corpus: dict) -> None:
    wav_dir = tmp_path / "aishell" / "data_aishell" / "wav"
    for speaker in ("S0002", "S0005"):  # S0002 is extracted, S0005 is not
        (wav_dir / f"{speaker}.tar.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"1 speaker tarball\(s\) not extracted \(e.g. S0005"):
        run_preparer("aishell", tmp_path / "aishell", tmp_path / "out")


def test_cli_strict_fails_when_something_was_skipped(tmp_path: Path, corpus: dict, capsys) -> None:
    args = ["aishell", "--src", str(tmp_path / "aishell"), "--out", str(tmp_path / "out")]
    assert prepare_main(args) == 0
    assert "train: kept 2" in capsys.readouterr().out
    assert prepare_main([*args, "--strict"]) == 1
    assert "--strict and 5 skipped" in capsys.readouterr().err


def test_cli_missing_src_is_a_clear_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "corpora" / "aishell"
    assert prepare_main(["aishell", "--src", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "data_aishell" in err and len(err.strip().splitlines()) == 1
    assert prepare_main(["aishell", "--out", str(tmp_path / "o")]) == 2
    assert "--src is required" in capsys.readouterr().err


def test_an_id_in_two_speaker_directories_names_both_files(tmp_path: Path, corpus: dict,
                                                           audio, capsys) -> None:
    """The same wav under two speakers would give a manifest no later stage can read
    (read_manifest refuses repeated ids): prepare stops, naming both files, and writes no
    train manifest."""
    wav = tmp_path / "aishell/data_aishell/wav/train/S0003/BAC009S0002W0122.wav"
    audio.tone(wav, 0.5)
    out = tmp_path / "out"
    assert prepare_main(["aishell", "--src", str(tmp_path / "aishell"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "utterance id 'BAC009S0002W0122' twice" in err and len(err.strip().splitlines()) == 1
    assert "S0002/BAC009S0002W0122.wav" in err and "S0003/BAC009S0002W0122.wav" in err
    assert not (out / "train.jsonl").exists()


@pytest.mark.parametrize("second", ["dev/S0725", "dev/S0002"])
def test_an_id_twice_in_a_later_split_or_in_two_splits_writes_no_manifest(
        tmp_path: Path, corpus: dict, audio, capsys, second: str) -> None:
    """An id twice in dev (found after train was prepared), or one recording in both train
    and dev (leakage): nothing is written, earlier manifests stay as they were."""
    repeated = "BAC009S0724W0121" if second == "dev/S0725" else "BAC009S0002W0122"
    audio.tone(tmp_path / "aishell/data_aishell/wav" / second / f"{repeated}.wav", 0.5)
    out = tmp_path / "out"
    out.mkdir()
    for split in ("train", "dev", "test"):
        (out / f"{split}.jsonl").write_text(f"earlier {split}\n")
    assert prepare_main(["aishell", "--src", str(tmp_path / "aishell"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    where = "twice in" if second == "dev/S0725" else "in both train and dev"
    assert f"utterance id '{repeated}' {where}" in err and len(err.strip().splitlines()) == 1
    assert f"{second}/{repeated}.wav" in err
    assert [(out / f"{s}.jsonl").read_text() for s in ("train", "dev", "test")] == [
        "earlier train\n", "earlier dev\n", "earlier test\n"]


def test_a_byte_order_mark_does_not_lose_the_first_transcript(tmp_path: Path, corpus: dict) -> None:
    transcript = tmp_path / "aishell/data_aishell/transcript/aishell_transcript_v0.8.txt"
    transcript.write_bytes(b"\xef\xbb\xbf" + transcript.read_bytes())
    summary = run_preparer("aishell", tmp_path / "aishell", tmp_path / "out")
    assert summary.splits["train"].kept == 2
    assert read_manifest(tmp_path / "out" / "train.jsonl")[0].text == "而对楼市成交抑制作用最大的限购"
