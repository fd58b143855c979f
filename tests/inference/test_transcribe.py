"""Transcribing with a model that recognises synth speech (tests/inference/synth_model.py):
resampling and channel mixing, a 10-minute recording cut into windows and stitched, bad
files among good ones, and the command line's formats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from asrkit.bin.transcribe import main
from asrkit.data.audio import load_audio
from asrkit.inference.recording import Recording
from asrkit.inference.transcriber import Transcriber
from asrkit.scoring.align import align_tokens


@pytest.fixture(scope="module")
def transcriber(trained):
    return Transcriber.load(trained.exp_dir, method="ctc_prefix_beam")


def test_recognises_its_utterances_from_paths_and_arrays(trained, transcriber):
    utterances = trained.utterances
    from_paths = transcriber.transcribe([u.audio for u in utterances])
    assert [r.text for r in from_paths] == [u.text for u in utterances]
    waves = [load_audio(u.audio) for u in utterances]
    from_arrays = transcriber.transcribe(waves)  # one batch of several lengths
    assert [r.text for r in from_arrays] == [u.text for u in utterances]
    assert from_arrays[0].source == "<array 0>"
    for r, wave in zip(from_paths, waves):
        assert r.duration == pytest.approx(wave.numel() / 16000)
        assert all(0 <= w.start < w.end <= r.duration + 0.05 for w in r.words)
        assert all(0.0 < w.confidence <= 1.0 for w in r.words)


def test_44k_stereo_gives_the_mono_16k_hypothesis(trained, transcriber, tmp_path):
    utterance = trained.utterances[0]
    mono = load_audio(utterance.audio)
    at_44k = AF.resample(mono, 16000, 44100)
    noise = torch.randn(at_44k.shape, generator=torch.Generator().manual_seed(0)) * 0.3
    stereo = torch.stack([at_44k + noise, at_44k - noise], dim=1)  # the mean cancels the noise
    path = tmp_path / "stereo44k.wav"
    sf.write(str(path), stereo.numpy(), 44100, subtype="FLOAT")
    mixed, = transcriber.transcribe([path])
    assert mixed.text == utterance.text == transcriber.transcribe([utterance.audio])[0].text
    # the same array given at its own rate, and channel 0 alone (speech plus loud noise)
    assert transcriber.transcribe([stereo], sample_rate=44100)[0].text == utterance.text
    channel0 = Transcriber.load(trained.exp_dir, method="ctc_prefix_beam", channel=0)
    assert channel0.transcribe([path])[0].text != utterance.text


def test_ten_minute_recording(transcriber, long_recording, monkeypatch):
    """Every word in order (up to the model's own slips), no word lost or doubled at the
    seams, each utterance's words within 0.1 s of its known boundaries, and the file read
    in blocks no longer than a window with its context (memory flat with the length)."""
    blocks = []
    read = Recording._read_file

    def counting_read(self, first, last):
        blocks.append(last - first)
        return read(self, first, last)

    monkeypatch.setattr(Recording, "_read_file", counting_read)
    start = time.perf_counter()
    result, = transcriber.transcribe([long_recording.path])
    elapsed = time.perf_counter() - start
    # a window with its context, its start moved back to the encoder frame grid (< 640)
    assert max(blocks) < (20 + 2 * 1) * 16000 + 640
    assert sum(blocks) < 1.4 * 16000 * result.duration
    bounds, texts = long_recording.bounds, long_recording.texts
    assert result.duration == pytest.approx(bounds[-1]) and result.duration >= 600
    assert result.windows >= 30
    ref = [(word, k) for k, text in enumerate(texts) for word in text.split()]
    pairs = align_tokens([w for w, _ in ref], [w.text for w in result.words])
    errors = sum(op != "C" for op, _, _ in pairs)
    assert errors / len(ref) < 0.05, f"{errors} word errors in {len(ref)}"
    # each utterance's words, by where they lie: as many as it has (a seam that lost or
    # doubled words would show here), and inside [its start - 0.1 s, its end + 0.1 s]
    owner = np.searchsorted(bounds, [w.midpoint for w in result.words], side="right") - 1
    counts = np.bincount(owner, minlength=len(texts))
    expected = np.array([len(t.split()) for t in texts])
    assert np.abs(counts - expected).max() <= 1  # the model may join or split one word
    assert (counts == expected).mean() > 0.95
    for k in range(len(texts)):
        words = [w for w, o in zip(result.words, owner) if o == k]
        assert words[0].start >= bounds[k] - 0.1, (k, words[0], bounds[k])
        assert words[-1].end <= bounds[k + 1] + 0.1, (k, words[-1], bounds[k + 1])
    assert elapsed < 60


def test_short_windows_cutting_inside_words_keep_every_word_once(trained):
    """3 s windows with 1 s of search cut inside words at many of their seams: each word is
    still written once (the windows start on the encoder frame grid, so both sides time a
    word at a seam alike, and the stitcher compares the sides)."""
    from asrkit.inference.windows import WindowSettings

    order = torch.randint(0, len(trained.utterances), (40,),
                          generator=torch.Generator().manual_seed(0)).tolist()
    recording = torch.cat([load_audio(trained.utterances[i].audio) for i in order])
    spoken = " ".join(trained.utterances[i].text for i in order)
    settings = WindowSettings(window=3.0, overlap=0.5, search=1.0, min_tail=0.5)
    short = Transcriber.load(trained.exp_dir, method="ctc_prefix_beam", windows=settings)
    result, = short.transcribe([recording])
    assert result.windows > 30
    assert result.text == spoken


def test_bad_files_among_good_ones(trained, tmp_path, capsys):
    good = [u.audio for u in trained.utterances[:2]]
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, "float32"), 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(Path(good[0]).read_bytes()[:3000])
    nan = tmp_path / "nan.wav"
    sf.write(str(nan), np.full(8000, np.nan, "float32"), 16000, subtype="FLOAT")
    text = tmp_path / "readme.flac"
    text.write_text("not audio")
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), np.zeros(100, "float32"), 16000)
    inputs = [good[0], empty, truncated, nan, text, tiny, good[1]]
    out = tmp_path / "out.jsonl"
    status = main([str(trained.exp_dir), *map(str, inputs), "--format", "json", "--out", str(out),
                   "--method", "ctc_greedy"])
    assert status == 1
    err = capsys.readouterr().err.splitlines()
    failures = [line for line in err if line.startswith("asrkit transcribe: ")]
    assert len(failures) == 5
    for bad, line in zip([empty, truncated, nan, text, tiny], failures):
        assert str(bad) in line
    assert "empty audio" in failures[0] and "truncated" in failures[1]
    assert "non-finite" in failures[2] and "unreadable" in failures[3]
    assert "too short" in failures[4]
    assert err[-1].startswith("transcribed 7 files (5 failed): ")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [entry["source"] for entry in lines] == list(map(str, inputs))
    assert lines[0]["text"] == trained.utterances[0].text
    assert lines[-1]["text"] == trained.utterances[1].text
    assert all("error" in entry for entry in lines[1:-1])


def test_command_line_formats(trained, tmp_path, capsys, monkeypatch):
    paths = [str(u.audio) for u in trained.utterances[:3]]
    assert main([str(trained.exp_dir), paths[0], "--method", "ctc_greedy"]) == 0
    out = capsys.readouterr()
    assert out.out == trained.utterances[0].text + "\n"
    assert out.err.startswith("transcribed 1 file: 0:0")
    ctm = tmp_path / "all.ctm"
    assert main([str(trained.exp_dir), *paths, "--format", "ctm", "--out", str(ctm)]) == 0
    rows = [line.split() for line in ctm.read_text().splitlines()]
    assert [r[4] for r in rows] == " ".join(u.text for u in trained.utterances[:3]).split()
    assert all(len(r) == 6 and r[1] == "1" and float(r[3]) > 0 for r in rows)
    srt_dir = tmp_path / "srt"
    assert main([str(trained.exp_dir), *paths, "--format", "srt", "--out", str(srt_dir)]) == 0
    assert sorted(p.name for p in srt_dir.iterdir()) == \
        sorted(f"{p.rsplit('/', 1)[-1][:-4]}.srt" for p in paths)
    assert main([str(trained.exp_dir), *paths, "--format", "srt"]) == 2  # needs --out DIR
    assert main([str(trained.exp_dir), str(tmp_path / "missing.wav")]) == 2
    assert main([str(tmp_path / "no_model"), paths[0]]) == 2
    assert main([str(trained.exp_dir), paths[0], "--method", "nope"]) == 2
    capsys.readouterr()
    assert main([str(trained.exp_dir), paths[0], "--precision", "bf16", "--streaming"]) == 2
    assert capsys.readouterr().err == ("asrkit transcribe: --precision: --streaming decodes "
                                       "in fp32\n")
    loaded = []

    def load(*args, **kwargs):
        transcriber = original(*args, **kwargs)
        loaded.append(transcriber.precision.name)
        return transcriber

    original = Transcriber.load
    monkeypatch.setattr(Transcriber, "load", load)
    assert main([str(trained.exp_dir), paths[0], "--precision", "bf16"]) == 0
    out = capsys.readouterr()
    assert out.out == trained.utterances[0].text + "\n"
    assert out.err.startswith("transcribed 1 file: ") and out.err.endswith("; precision bf16\n")
    assert loaded == ["bf16"]


def test_a_recording_that_fails_midway(trained, transcriber, tmp_path):
    """NaN samples 30 s into a 40 s recording: its first window was read (and queued) before
    the failure; the recording fails alone and the next one is still transcribed."""
    wave = np.zeros(16000 * 40, "float32")
    wave[16000 * 30] = np.nan
    bad = tmp_path / "nan_at_30s.wav"
    sf.write(str(bad), wave, 16000, subtype="FLOAT")
    good = trained.utterances[2]
    failed, result = transcriber.transcribe([bad, good.audio])
    assert failed.reason == f"{bad}: 1 non-finite samples (NaN/inf)"
    assert result.text == good.text


def test_usage_errors_are_found_before_the_model_loads(trained, tmp_path, capsys, monkeypatch):
    """Counts, lengths, devices and --out that cannot be meant: exit 2 with one line naming
    the option, before the model is loaded and before anything is written."""
    import io

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(Transcriber, "load", no_load)
    audio = str(trained.utterances[0].audio)
    (tmp_path / "a_dir").mkdir()
    cases = {
        ("--out", str(tmp_path / "a_dir")): f"--out {tmp_path / 'a_dir'}: is a directory",
        ("--out", str(tmp_path / "no" / "x.txt")): f"no directory {tmp_path / 'no'}",
        ("--threads", "-1"): "--threads must be >= 1, got -1",
        ("--batch-size", "0"): "--batch-size must be >= 1, got 0",
        ("--beam", "0"): "--beam must be >= 1, got 0",
        ("--streaming", "--piece", "0"): "--piece must be > 0 seconds, got 0.0",
        ("--device", "cuda:99"): "--device cuda:99: this machine has",
        ("--device", "foo"): "--device foo: not a device",
        ("--window", "0.00002"): "window: 2e-05 s is shorter than 1.0 s",
    }
    for extra, message in cases.items():
        assert main([str(trained.exp_dir), audio, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("asrkit transcribe: ") and message in err and err.count("\n") == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("# only a comment\n\n"))
    assert main([str(trained.exp_dir), "-"]) == 2
    assert capsys.readouterr().err == "asrkit transcribe: -: no paths on standard input\n"
    # --out naming an input: refused before the file is opened for writing (it was emptied)
    victim = tmp_path / "victim.wav"
    victim.write_bytes(Path(audio).read_bytes())
    for streaming in ([], ["--streaming"]):
        assert main([str(trained.exp_dir), str(victim), "--out", str(victim), *streaming]) == 2
        assert capsys.readouterr().err == (f"asrkit transcribe: --out {victim}: is one of the "
                                           "audio files to transcribe\n")
        assert victim.read_bytes() == Path(audio).read_bytes()


def test_recordings_of_the_same_stem_get_distinct_ctm_names(trained, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.wav").write_bytes(Path(trained.utterances[int(name == "b")]
                                                     .audio).read_bytes())
    ctm = tmp_path / "all.ctm"
    assert main([str(trained.exp_dir), str(tmp_path / "a" / "x.wav"),
                 str(tmp_path / "b" / "x.wav"), "--format", "ctm", "--out", str(ctm)]) == 0
    rows = [line.split() for line in ctm.read_text().splitlines()]
    words = {name: [r[4] for r in rows if r[0] == name] for name in ("x", "x_")}
    assert words == {"x": trained.utterances[0].text.split(),
                     "x_": trained.utterances[1].text.split()}


def test_srt_files_stay_inside_out_whatever_the_directory_names(trained, tmp_path,
                                                                 monkeypatch):
    """A directory named ``<..`` (the in-memory arrays' names start with ``<``) used to keep
    its whole path in the SRT file's name, so ``<../a.wav`` was written beside --out."""
    work = tmp_path / "work"
    (work / "<..").mkdir(parents=True)
    for name, utterance in zip("ab", trained.utterances, strict=False):
        (work / "<.." / f"{name}.wav").write_bytes(Path(utterance.audio).read_bytes())
    monkeypatch.chdir(work)
    assert main([str(trained.exp_dir), "<../a.wav", "<../b.wav", "--format", "srt",
                 "--out", "deep/subs"]) == 0
    written = sorted(p.relative_to(work).as_posix() for p in work.rglob("*.srt"))
    assert written == ["deep/subs/a.srt", "deep/subs/b.srt"]


def test_integer_pcm_arrays_are_scaled_and_a_transposed_one_is_named(trained, transcriber):
    utterance = trained.utterances[0]
    wave = load_audio(utterance.audio)
    pcm = (wave * 32767).round().to(torch.int16).numpy()
    result, = transcriber.transcribe([pcm])
    assert result.text == utterance.text
    stereo = torch.stack([wave, wave])  # torchaudio's (channels, samples)
    failure, = transcriber.transcribe([stereo])
    assert failure.reason == (f"<array 0>: shape (2, {wave.numel()}) has more channels than "
                              f"samples: audio is (samples, channels), as soundfile reads it; "
                              f"transpose a (channels, samples) tensor (torchaudio's layout)")
    bad, = transcriber.transcribe([np.zeros(16000, np.int64)])
    assert bad.reason.startswith("<array 0>: audio samples of dtype int64")
    for empty in (np.zeros(0, np.float32), np.zeros((0, 2), np.float32)):
        nothing, = transcriber.transcribe([empty])  # the shape given, not a reshaped one
        assert nothing.reason == ("<array 0>: expected (samples,) or (samples, channels) "
                                  f"audio with samples, got shape {empty.shape}")


def test_float_samples_scale_pcm_as_soundfile_reads_it(tmp_path):
    from asrkit.data.audio import float_samples

    pcm = np.array([-32768, -1, 0, 1, 32767], np.int16)
    path = tmp_path / "pcm.wav"
    sf.write(str(path), pcm, 16000, subtype="PCM_16")
    assert np.array_equal(float_samples(pcm, "x"), sf.read(str(path), dtype="float32")[0])
    pcm8 = np.array([0, 128, 255], np.uint8)
    assert float_samples(pcm8, "x").tolist() == [-1.0, 0.0, 127 / 128]
