"""Kaldi data-directory preparer: whole recordings, segments, utt2spk, piped entries."""

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
    SKIP_UNREADABLE_AUDIO,
)
from asrkit.data.prepare.kaldi import (
    SKIP_ARCHIVE_AUDIO,
    SKIP_NO_SEGMENT,
    SKIP_PIPED_AUDIO,
    SKIP_UNKNOWN_RECORDING,
)


@pytest.fixture
def train_dir(tmp_path: Path, audio, lines) -> dict:
    """<tmp>/data/train without segments; u2's wav.scp path is relative to <tmp>/audio_root."""
    wavs = tmp_path / "wavs"
    durations = {"u1": audio.tone(wavs / "u1.wav", 0.5),
                 "u2": audio.tone(tmp_path / "audio_root" / "rel" / "u2.wav", 0.75)}
    audio.tone(wavs / "u3.wav", 0.3)
    audio.corrupt(wavs / "u4.wav")
    audio.empty(wavs / "u5.wav")
    audio.tone(wavs / "u8.wav", 0.3)
    data = tmp_path / "data" / "train"
    lines(data / "wav.scp", [
        f"u1 {wavs / 'u1.wav'}", "u2 rel/u2.wav", f"u3 {wavs / 'u3.wav'}",
        f"u4\t{wavs / 'u4.wav'}", f"u5 {wavs / 'u5.wav'}",
        f"u6 flac -c -d -s {wavs / 'u6.flac'} |", f"u8 {wavs / 'u8.wav'}",
        f"u9 {wavs / 'raw.ark'}:123",
    ])
    (wavs / "raw.ark").write_bytes(bytes(200))  # the archive exists; the offset is no file
    lines(data / "text", ["u1 HELLO  WORLD", "u2 good morning", "u3", "u4 broken", "u5 empty",
                          "u6 piped", "u7 no recording", "u9 in an archive"])
    lines(data / "utt2spk", ["u1 spk_a", "u2 spk_b", "u3 spk_a", "u4 spk_a", "u5 spk_a",
                             "u6 spk_a", "u7 spk_a", "u8 spk_a", "u9 spk_a"])
    return durations


TRAIN_SKIPS = [
    ("u3", SKIP_EMPTY_TEXT), ("u4", SKIP_UNREADABLE_AUDIO), ("u5", SKIP_EMPTY_AUDIO),
    ("u6", SKIP_PIPED_AUDIO), ("u7", SKIP_UNKNOWN_RECORDING), ("u8", SKIP_NO_TEXT),
    ("u9", SKIP_ARCHIVE_AUDIO),
]


def test_whole_recordings(tmp_path: Path, train_dir: dict) -> None:
    out = tmp_path / "out"
    summary = run_preparer("kaldi", tmp_path / "data" / "train", out,
                           audio_root=tmp_path / "audio_root")
    assert list(summary.splits) == ["train"]
    assert summary.splits["train"].kept == 2
    assert summary.splits["train"].skipped == TRAIN_SKIPS
    assert [p.name for p in out.iterdir()] == ["train.jsonl"]
    u1, u2 = read_manifest(out / "train.jsonl")
    assert (u1.id, u1.text, u1.speaker) == ("u1", "HELLO WORLD", "spk_a")
    assert u1.duration == pytest.approx(train_dir["u1"], abs=1e-3)
    assert Path(u1.audio).is_file() and u1.start is None and u1.end is None
    assert (u2.id, u2.speaker, u2.audio) == ("u2", "spk_b", str(tmp_path / "audio_root/rel/u2.wav"))
    assert u2.duration == pytest.approx(train_dir["u2"], abs=1e-3)


def test_relative_paths_default_to_the_current_directory(
    tmp_path: Path, train_dir: dict, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path / "audio_root")
    summary = run_preparer("kaldi", tmp_path / "data" / "train", tmp_path / "out")
    assert summary.splits["train"].kept == 2


def test_without_utt2spk_the_speaker_is_the_utterance(tmp_path: Path, train_dir: dict) -> None:
    (tmp_path / "data" / "train" / "utt2spk").unlink()
    run_preparer("kaldi", tmp_path / "data" / "train", tmp_path / "out",
                 audio_root=tmp_path / "audio_root")
    assert [u.speaker for u in read_manifest(tmp_path / "out" / "train.jsonl")] == ["u1", "u2"]


def test_segments_give_start_and_end(tmp_path: Path, audio, lines) -> None:
    recording = audio.tone(tmp_path / "rec1.wav", 1.0)
    data = tmp_path / "dev_segmented"
    lines(data / "wav.scp", [f"rec1 {tmp_path / 'rec1.wav'}", "rec2 sox in.wav -t wav - |"])
    lines(data / "segments", [
        "s1 rec1 0.00 0.40", "s2 rec1 0.40 0.75", "s3 rec1 0.75 -1", "s4 rec9 0 1",
        "s5 rec1 1.50 2.00", "s6 rec2 0 1", "s8 rec1 0 0.5", "s9 rec1 0.5 9.0",
    ])
    lines(data / "text", ["s1 a", "s2 b", "s3 c", "s4 d", "s5 e", "s6 f", "s7 g", "s9 i"])
    summary = run_preparer("kaldi", data, tmp_path / "out")
    assert summary.splits["dev_segmented"].skipped == [
        ("s4", SKIP_UNKNOWN_RECORDING), ("s5", SKIP_EMPTY_AUDIO), ("s6", SKIP_PIPED_AUDIO),
        ("s7", SKIP_NO_SEGMENT), ("s8", SKIP_NO_TEXT),
    ]
    s1, s2, s3, s9 = read_manifest(tmp_path / "out" / "dev_segmented.jsonl")
    assert (s1.id, s1.start, s1.end, s1.speaker) == ("s1", 0.0, 0.4, "s1")
    assert s1.duration == pytest.approx(0.4, abs=1e-3)
    assert (s2.start, s2.end) == (0.4, 0.75) and s2.duration == pytest.approx(0.35, abs=1e-3)
    assert (s3.start, s3.end) == (0.75, None)  # end -1: to the end of the recording
    assert s3.duration == pytest.approx(recording - 0.75, abs=1e-3)
    assert s1.audio == s2.audio == str(tmp_path / "rec1.wav")
    # a segment past the end of its recording ends with it
    assert (s9.start, s9.end, s9.duration) == (0.5, recording, recording - 0.5)


def test_malformed_segments_name_the_file(tmp_path: Path, train_dir: dict, lines, capsys) -> None:
    data = tmp_path / "data" / "train"
    lines(data / "segments", ["u2 u2 0.0 0.5", "u1 u1 0.0"])
    with pytest.raises(ValueError, match="segments:2: segment 'u1' should be"):
        run_preparer("kaldi", data, tmp_path / "out")
    assert prepare_main(["kaldi", "--src", str(data), "--out", str(tmp_path / "out")]) == 2
    assert f"{data / 'segments'}:2: segment 'u1'" in capsys.readouterr().err


@pytest.mark.parametrize("segment", ["u1 u1 nan 1.0", "u1 u1 0.2 inf", "u1 u1 -0.5 0.5",
                                     "u1 u1 0.6 0.4", "u1 u1 0.5 0.5"])
def test_segments_need_finite_times_from_zero(tmp_path: Path, train_dir: dict, lines,
                                               segment: str) -> None:
    data = tmp_path / "data" / "train"
    lines(data / "segments", ["u2 u1 0.0 0.5", segment])
    with pytest.raises(ValueError, match=f"segments:2: segment 'u1' should be .* with finite "
                                         f"times, 0 <= start < end .*, got '{segment}'"):
        run_preparer("kaldi", data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_a_one_line_error(tmp_path: Path, train_dir: dict,
                                                   capsys) -> None:
    (tmp_path / "afile").write_text("kept")
    args = ["kaldi", "--src", str(tmp_path / "data" / "train"), "--audio-root",
            str(tmp_path / "audio_root")]
    assert prepare_main([*args, "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asrkit prepare kaldi: ") and err.count("\n") == 1
    assert str(tmp_path / "afile") in err
    assert (tmp_path / "afile").read_text() == "kept"


def test_cli_strict_fails_when_something_was_skipped(tmp_path: Path, train_dir: dict, capsys) -> None:
    args = ["kaldi", "--src", str(tmp_path / "data" / "train"), "--out", str(tmp_path / "out"),
            "--audio-root", str(tmp_path / "audio_root")]
    assert prepare_main(args) == 0
    assert f"1 x {SKIP_PIPED_AUDIO}: u6" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "out" / "train.jsonl")) == 2
    assert prepare_main([*args, "--strict"]) == 1
    assert "--strict and 7 skipped" in capsys.readouterr().err


def test_keeping_nothing_exits_1_and_leaves_the_old_manifest(tmp_path: Path, train_dir: dict,
                                                             capsys) -> None:
    data, out = tmp_path / "data" / "train", tmp_path / "out"
    args = ["kaldi", "--src", str(data), "--out", str(out)]
    assert prepare_main([*args, "--audio-root", str(tmp_path / "audio_root")]) == 0
    before = (out / "train.jsonl").read_bytes()
    (tmp_path / "wavs" / "u1.wav").unlink()  # now every utterance is skipped
    assert prepare_main(args) == 1
    captured = capsys.readouterr()
    assert "train: kept 0 (0.00 h), skipped 9 (not written: an existing manifest is left" \
        in captured.out
    assert "no utterance kept (9 skipped" in captured.err
    assert (out / "train.jsonl").read_bytes() == before and len(read_manifest(out / "train.jsonl")) == 2


def test_cli_missing_src_is_a_clear_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "data" / "nope"
    assert prepare_main(["kaldi", "--src", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{missing}: not a Kaldi data directory (no wav.scp)" in err
    assert len(err.strip().splitlines()) == 1
    assert prepare_main(["kaldi", "--out", str(tmp_path / "o")]) == 2
    assert "--src is required" in capsys.readouterr().err


def test_non_utf8_text_is_one_line_naming_file_and_line(tmp_path: Path, train_dir: dict, capsys) -> None:
    data = tmp_path / "data" / "train"
    (data / "text").write_bytes(b"u1 HELLO\nu2 caf\xff au lait\n")
    assert prepare_main(["kaldi", "--src", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"asrkit prepare kaldi: {data / 'text'}:2: not UTF-8 text "
                   "(byte 0xff at byte 7 of the line: invalid start byte)\n")


def test_a_full_disk_is_exit_1_naming_the_manifest(tmp_path: Path, train_dir: dict,
                                                   monkeypatch, capsys) -> None:
    """Opening the manifest's temporary file failed with a bare "[Errno 28]" and exit 2."""
    import errno

    real_open = Path.open

    def full(self, *args, **kwargs):
        if ".tmp" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    out = tmp_path / "out"
    assert prepare_main(["kaldi", "--src", str(tmp_path / "data" / "train"), "--out", str(out),
                         "--audio-root", str(tmp_path / "audio_root")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit prepare kaldi: {out / 'train.jsonl'}: could not be written (")
    assert err.endswith("No space left on device\n") and err.count("\n") == 1
