"""The synth corpus: voices, the plan of splits, the signal steps, and real end-to-end runs."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.bin.prepare import main as prepare_main
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.data.prepare.synth import synthesize as synth_module
from asrkit.data.prepare.synth import voices as voices_module
from asrkit.data.prepare.synth.plan import (
    LEVEL_RANGE,
    RATE_RANGE,
    SPLITS,
    plan_corpus,
    split_sizes,
)
from asrkit.data.prepare.synth.synthesize import SynthRequest, add_noise, resample, synthesize, trim
from asrkit.data.prepare.synth.voices import (
    ESPEAK,
    ESPEAK_TRAIN,
    ESPEAK_UNSEEN,
    FLITE,
    FLITE_TRAIN,
    FLITE_UNSEEN,
    Voice,
    select_voices,
)

synth_package = importlib.import_module("asrkit.data.prepare.synth")

ACCENTS = {name.split("+")[0] for name in ESPEAK_TRAIN + ESPEAK_UNSEEN}
VARIANTS = {name.split("+")[1] for name in ESPEAK_TRAIN + ESPEAK_UNSEEN}
FLITES = set(FLITE_TRAIN) | set(FLITE_UNSEEN)
HAVE_ENGINE = bool(shutil.which(ESPEAK) or shutil.which(FLITE))
needs_engine = pytest.mark.skipif(not HAVE_ENGINE, reason="needs espeak-ng or flite")


def full_voices():
    return select_voices((ACCENTS, VARIANTS), FLITES)


# ---- voices ------------------------------------------------------------------------------

def test_held_out_voices_are_never_training_voices():
    voices = full_voices()
    train, unseen = {v.speaker for v in voices.train}, {v.speaker for v in voices.unseen}
    assert len(train) >= 10 and not train & unseen and not voices.notes
    assert sum(v.engine == ESPEAK for v in voices.unseen) >= 2
    assert any(v.engine == FLITE for v in voices.unseen)
    assert "espeak-en-us+m3" in train and "flite-slt" in train


def test_uses_whichever_engine_exists():
    only_flite = select_voices(None, FLITES)
    assert {v.engine for v in only_flite.train + only_flite.unseen} == {FLITE}
    assert any("espeak-ng not found" in note for note in only_flite.notes)
    only_espeak = select_voices((ACCENTS, VARIANTS), None)
    assert {v.engine for v in only_espeak.train + only_espeak.unseen} == {ESPEAK}
    assert any("flite not found" in note for note in only_espeak.notes)
    with pytest.raises(FileNotFoundError, match="tools/install_deps.sh"):
        select_voices(None, None)


def test_voices_whose_variant_is_not_installed_are_dropped():
    voices = select_voices((ACCENTS, VARIANTS - {"m3"}), FLITES)
    names = {v.name for v in voices.train + voices.unseen}
    assert "en-us+m3" not in names and "en-gb+m3" not in names and "en-us+m1" in names


# ---- the plan ----------------------------------------------------------------------------

def test_split_sizes():
    assert split_sizes(40, 0.08, 0.08, 0.08) == {"train": 31, "dev": 3, "test": 3, "test_unseen": 3}
    assert split_sizes(5, 0.08, 0.08, 0.08) == {"train": 2, "dev": 1, "test": 1, "test_unseen": 1}
    with pytest.raises(ValueError, match="no training utterances"):
        split_sizes(3, 0.08, 0.08, 0.08)
    with pytest.raises(ValueError, match="--dev-fraction must be in"):
        split_sizes(100, 1.5, 0.08, 0.08)


def test_plan_keeps_evaluation_sentences_and_unseen_voices_out_of_train():
    plan = plan_corpus(7, split_sizes(400, 0.1, 0.1, 0.1), full_voices(), (20.0, 40.0))
    by_split = {s: [p for p in plan if p.split == s] for s in SPLITS}
    train_texts = {p.text for p in by_split["train"]}
    held_out = [p.text for s in ("dev", "test", "test_unseen") for p in by_split[s]]
    assert not train_texts & set(held_out) and len(set(held_out)) == len(held_out)
    train_speakers = {p.request.voice.speaker for p in by_split["train"]}
    assert not train_speakers & {p.request.voice.speaker for p in by_split["test_unseen"]}
    assert {p.request.voice.speaker for p in by_split["test"]} <= train_speakers
    ids = [p.id for p in plan]
    assert len(set(ids)) == len(ids) and all(" " not in i for i in ids)
    assert [p.id for p in by_split["train"]] == sorted(p.id for p in by_split["train"])


def test_small_corpus_uses_many_voices():
    plan = plan_corpus(0, split_sizes(70, 0.08, 0.08, 0.08), full_voices(), None)
    assert len({p.request.voice.speaker for p in plan}) >= 10
    assert all(p.request.noise_snr is None for p in plan)


def test_plan_is_deterministic_and_train_does_not_depend_on_corpus_size():
    voices = full_voices()
    small = plan_corpus(3, split_sizes(50, 0.08, 0.08, 0.08), voices, (20.0, 40.0))
    assert small == plan_corpus(3, split_sizes(50, 0.08, 0.08, 0.08), voices, (20.0, 40.0))
    large = plan_corpus(3, split_sizes(90, 0.08, 0.08, 0.08), voices, (20.0, 40.0))
    assert small[:20] == large[:20]
    other = plan_corpus(4, split_sizes(50, 0.08, 0.08, 0.08), voices, (20.0, 40.0))
    assert [p.text for p in small] != [p.text for p in other]


def test_plan_draws_rate_pitch_level_and_snr_per_utterance():
    plan = plan_corpus(5, split_sizes(200, 0.08, 0.08, 0.08), full_voices(), (20.0, 40.0))
    draws = {
        "rate": ([p.request.rate for p in plan], RATE_RANGE),
        "pitch": ([p.request.pitch for p in plan], (-1.0, 1.0)),
        "level": ([p.request.level for p in plan], LEVEL_RANGE),
        "noise_snr": ([p.request.noise_snr for p in plan], (20.0, 40.0)),
    }
    for name, (values, (low, high)) in draws.items():
        assert all(low <= v <= high for v in values), name
        assert len(set(values)) > 150, f"{name} takes few distinct values"
        assert max(values) - min(values) > 0.9 * (high - low), f"{name} does not span its range"


# ---- signal steps ------------------------------------------------------------------------

def test_resample_matches_the_analytic_sine():
    t = np.arange(22050 * 2 + 17) / 22050
    wave = np.sin(2 * np.pi * 440 * t) * np.hanning(len(t))
    out = resample(wave, 22050, 16000)
    assert len(out) == round(len(wave) * 16000 / 22050)
    u = np.arange(len(out)) / 16000
    expected = np.sin(2 * np.pi * 440 * u) * np.interp(u, t, np.hanning(len(t)))
    assert np.abs(out - expected).max() < 1e-3


def test_trim_keeps_a_margin_of_silence():
    rate = 16000
    speech = np.random.default_rng(0).standard_normal(rate)
    wave = np.concatenate([np.zeros(rate), speech, np.zeros(2 * rate)])
    out = trim(wave, rate, margin=0.1)
    assert len(out) == rate + 2 * 1600


@pytest.mark.parametrize("color", ["white", "pink"])
def test_noise_has_the_requested_snr(color):
    wave = np.sin(np.arange(32000) * 0.05)
    noisy = add_noise(wave, 20.0, color, seed=1)
    snr = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
    assert snr == pytest.approx(20.0, abs=1e-6)
    assert np.array_equal(noisy, add_noise(wave, 20.0, color, seed=1))


def test_synthesize_mixes_noise_at_the_planned_snr(tmp_path: Path, monkeypatch):
    """The same utterance with and without noise: the difference is noise at the SNR asked for."""
    t = np.arange(22050) / 22050
    speech = np.sin(2 * np.pi * 300 * t) * np.hanning(len(t))  # an engine's output at 22.05 kHz
    monkeypatch.setattr(synth_module, "run_engine", lambda request: (speech, 22050))
    request = SynthRequest(Voice(ESPEAK, "en-us+m3"), "a", level=0.5, noise_snr=20.0,
                           noise_color="pink", noise_seed=3)
    synthesize(request, tmp_path / "noisy.wav")
    synthesize(SynthRequest(Voice(ESPEAK, "en-us+m3"), "a", level=0.5), tmp_path / "clean.wav")
    noisy, _ = sf.read(tmp_path / "noisy.wav")
    clean, _ = sf.read(tmp_path / "clean.wav")
    assert len(noisy) == len(clean)
    scale = np.dot(noisy, clean) / np.dot(clean, clean)  # both were scaled to the same peak
    noise = noisy - scale * clean
    snr = 10 * np.log10(np.sum((scale * clean) ** 2) / np.sum(noise**2))
    assert snr == pytest.approx(20.0, abs=0.5)


def test_nj_defaults_to_the_usable_cores(tmp_path: Path, monkeypatch):
    pool_sizes = []

    class RecordingPool:
        def __init__(self, processes):
            pool_sizes.append(processes)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, items, chunksize=1):
            return [fn(item) for item in items]

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)), raising=False)
    monkeypatch.setattr(synth_package, "ThreadPool", RecordingPool)
    monkeypatch.setattr(voices_module, "discover_voices", full_voices)
    monkeypatch.setattr(synth_module, "synthesize", lambda request, path: Path(path).touch() or 16000)
    summary = run_preparer("synth", None, tmp_path, num_utts=20, seed=0)
    assert summary.total_kept == 20
    assert pool_sizes == [len(os.sched_getaffinity(0))] == [6]
    run_preparer("synth", None, tmp_path, num_utts=20, seed=0, nj=3)
    assert pool_sizes[-1] == 3


def test_command_line_errors_name_the_corpus_once(tmp_path: Path, capsys):
    assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "2"]) == 2
    assert capsys.readouterr().err == ("asrkit prepare synth: --num-utts 2 leaves no training "
                                       "utterances (dev/test/test_unseen take 3)\n")
    assert prepare_main(["synth", "--out", str(tmp_path), "--nj", "0"]) == 2
    assert capsys.readouterr().err == "asrkit prepare synth: --nj must be at least 1, got 0\n"


# ---- end to end --------------------------------------------------------------------------

def read_corpus(out: Path) -> dict:
    manifests = {s: (out / f"{s}.jsonl").read_bytes() for s in SPLITS}
    wavs = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("wav/*/*.wav"))}
    return {"manifests": manifests, "wavs": wavs}


@needs_engine
def test_end_to_end_corpus_is_valid_and_byte_identical_per_seed(tmp_path: Path):
    summary = run_preparer("synth", None, tmp_path / "a", num_utts=40, seed=11, nj=2)
    sizes = split_sizes(40, 0.08, 0.08, 0.08)
    assert summary.total_skipped == 0 and summary.total_kept == 40
    speakers = {}
    for split in SPLITS:
        utterances = read_manifest(tmp_path / "a" / f"{split}.jsonl")
        assert len(utterances) == sizes[split]
        speakers[split] = {u.speaker for u in utterances}
        for u in utterances:
            info = sf.info(u.audio)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert abs(info.frames / 16000 - u.duration) < 1e-3
            assert 0.5 <= u.duration <= 10.0
    assert not speakers["train"] & speakers["test_unseen"]
    lines = (tmp_path / "a" / "train.jsonl").read_text().splitlines()
    assert '"audio": "wav/train/train-000000.wav"' in lines[0]  # relative: the dir can move

    run_preparer("synth", None, tmp_path / "b", num_utts=40, seed=11, nj=1)
    first, again = read_corpus(tmp_path / "a"), read_corpus(tmp_path / "b")
    assert first["manifests"] == again["manifests"]
    assert len(first["wavs"]) == 40 and first["wavs"] == again["wavs"]

    run_preparer("synth", None, tmp_path / "c", num_utts=40, seed=12, nj=2)
    texts = [u.text for u in read_manifest(tmp_path / "a" / "train.jsonl")]
    assert texts != [u.text for u in read_manifest(tmp_path / "c" / "train.jsonl")]


@needs_engine
def test_failed_synthesis_is_skipped_and_counted(tmp_path: Path, monkeypatch):
    real = synth_module.engine_command
    monkeypatch.setattr(synth_module, "engine_command",
                        lambda r: ["sh", "-c", "exit 3"] if r.voice.name.endswith("1") else real(r))
    summary = run_preparer("synth", None, tmp_path, num_utts=30, seed=0, noise_snr=None)
    failed = [u for s in summary.splits.values() for u, _ in s.skipped]
    assert failed and summary.total_kept + len(failed) == 30
    reasons = {r for s in summary.splits.values() for r in s.reasons}
    assert reasons == {"sh exited with status 3"}
    kept = [u.id for s in SPLITS for u in read_manifest(tmp_path / f"{s}.jsonl")]
    assert len(kept) == summary.total_kept and not set(kept) & set(failed)


def test_missing_engines_give_one_clear_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(voices_module.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="tools/install_deps.sh"):
        run_preparer("synth", None, tmp_path, num_utts=10)
    assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "install_deps.sh" in err


@needs_engine
def test_command_line(tmp_path: Path, capsys):
    assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "6", "--seed", "2",
                         "--noise-snr", "off", "--nj", "2"]) == 0
    assert "kept 6" in capsys.readouterr().out
    assert len(read_manifest(tmp_path / "test_unseen.jsonl")) == 1
    with pytest.raises(SystemExit):
        prepare_main(["synth", "--out", str(tmp_path), "--noise-snr", "loud"])


@needs_engine
def test_a_full_disk_while_writing_audio_is_exit_1_naming_the_file(tmp_path: Path,
                                                                   monkeypatch, capsys):
    """libsndfile reports a full disk as "System error." (no errno): that was a traceback."""
    def full(path, wave, rate):
        raise sf.SoundFileError("System error.")

    monkeypatch.setattr(synth_module, "write_wav", full)
    assert prepare_main(["synth", "--out", str(tmp_path), "--num-utts", "6", "--nj", "1",
                         "--noise-snr", "off"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit prepare synth: {tmp_path / 'wav' / '.partial'}/") and \
        ": could not be written (" in err and err.endswith("System error.\n")
    assert err.count("\n") == 1 and not list(tmp_path.glob("*.jsonl"))
