"""Transcribing with transducer models: tiny random ones (a transducer alone, a hybrid with
CTC and an attention decoder) through the command line's paths and formats, and the
transducers trained on the synth model's encoder (tests/inference/synth_transducer.py),
which recognise their utterances and place the words of utterances in a row inside each
utterance's known boundaries."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from asrkit.bin.transcribe import main
from asrkit.data.audio import load_audio
from asrkit.inference.transcriber import Transcriber
from tests.conftest import _make_experiment

SMALL = ("transducer.prediction_dim=32", "transducer.joint_dim=32")
EXPERIMENTS = {"alone": ("model=transducer", "transducer=lstm", *SMALL),
               "hybrid": ("transducer=stateless", "model.transducer_weight=0.5", *SMALL)}


@pytest.fixture(scope="module")
def random_exps(synth_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("transducer_exps")
    return {name: _make_experiment(root / name, synth_dir / "train.jsonl", extra=extra)
            for name, extra in EXPERIMENTS.items()}


def _audio(synth_dir, count):
    lines = (synth_dir / "train.jsonl").read_text().splitlines()[:count]
    return [str(synth_dir / json.loads(line)["audio"]) for line in lines]


def _check_times(entry: dict, period: float = 0.04, unaligned_ok: bool = False) -> None:
    """Tokens and words: starts in order, each inside the audio, confidence a probability
    (never 0 for an emission; ``unaligned_ok``: 0 where a CTC alignment was impossible and
    the tokens were spread evenly)."""
    for key in ("words", "tokens"):
        items = entry[key]
        starts = [item["start"] for item in items]
        assert starts == sorted(starts)
        assert all(0 <= item["start"] < item["end"] <= entry["duration"] + period
                   for item in items)
        assert all(0 < item["confidence"] <= 1 or (unaligned_ok and item["confidence"] == 0)
                   for item in items)


@pytest.mark.parametrize("name", ["alone", "hybrid"])
def test_random_transducer_paths_and_formats(random_exps, synth_dir, name, tmp_path, capsys,
                                             monkeypatch):
    exp, paths = str(random_exps[name]), _audio(synth_dir, 3)
    assert Transcriber.load(exp, "avg_2.pt").method_name == "transducer_modified_beam"
    out = tmp_path / "out.jsonl"
    assert main([exp, *paths, "--checkpoint", "avg_2.pt", "--format", "json",
                 "--out", str(out)]) == 0
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["source"] for e in entries] == paths
    assert all(e["text"] and e["words"] for e in entries)
    for entry in entries:
        _check_times(entry)
    ctm, srt = tmp_path / "all.ctm", tmp_path / "srt"
    for method in ("transducer_greedy", "transducer_beam"):
        monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(paths[:2]) + "\n"))
        assert main([exp, "-", "--checkpoint", "avg_2.pt", "--format", "ctm",
                     "--out", str(ctm), "--method", method, "--beam", "2"]) == 0
        rows = [line.split() for line in ctm.read_text().splitlines()]
        assert rows and all(len(r) == 6 and float(r[3]) > 0 for r in rows)
    recordings = tmp_path / "recordings" / "inner"
    recordings.mkdir(parents=True)
    for path in paths:
        (recordings / path.rsplit("/", 1)[-1]).symlink_to(path)
    assert main([exp, str(recordings.parent), "--checkpoint", "avg_2.pt", "--format", "srt",
                 "--out", str(srt)]) == 0
    assert len(list(srt.glob("*.srt"))) == len(paths)
    capsys.readouterr()


def test_hybrid_methods_time_with_ctc_or_emissions(random_exps, synth_dir, tmp_path, capsys):
    """A hybrid also runs CTC, attention and rescoring methods (timed by CTC alignment);
    a transducer alone refuses CTC methods with one line (exit 2)."""
    exp, paths = str(random_exps["hybrid"]), _audio(synth_dir, 2)
    out = tmp_path / "out.jsonl"
    for method in ("ctc_prefix_beam", "attention_rescoring", "transducer_rescoring"):
        assert main([exp, *paths, "--checkpoint", "avg_2.pt", "--format", "json",
                     "--out", str(out), "--method", method, "--beam", "3"]) == 0
        for entry in map(json.loads, out.read_text().splitlines()):
            _check_times(entry, unaligned_ok=True)
    capsys.readouterr()
    assert main([str(random_exps["alone"]), paths[0], "--checkpoint", "avg_2.pt",
                 "--method", "ctc_greedy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'ctc_greedy' needs a CTC head" in err[0]


@pytest.mark.parametrize("model", ["alone", "hybrid"])
def test_trained_transducer_recognises_its_utterances(trained, trained_transducer, model):
    transcriber = Transcriber.load(getattr(trained_transducer, model))
    assert transcriber.method_name == "transducer_modified_beam"
    results = transcriber.transcribe([u.audio for u in trained.utterances])
    assert [r.text for r in results] == [u.text for u in trained.utterances]
    for r in results:
        assert all(0 <= w.start < w.end <= r.duration for w in r.words)
        assert all(a.end <= b.start for a, b in zip(r.words, r.words[1:]))
        assert all(0.5 < w.confidence <= 1.0 for w in r.words)


@pytest.mark.parametrize("method", ["transducer_modified_beam", "transducer_greedy"])
def test_trained_transducer_times_utterances_in_a_row(trained, trained_transducer, method,
                                                      tmp_path):
    """Six utterances in a row (one window): each utterance's words lie within 0.1 s of its
    boundaries (as the CTC model's, tests/inference/test_transcribe.py)."""
    order = [3, 0, 7, 5, 1, 8]
    waves = [load_audio(trained.utterances[i].audio).numpy() for i in order]
    bounds = np.cumsum([0] + [w.size for w in waves]) / 16000
    path = tmp_path / "row.wav"
    sf.write(str(path), np.concatenate(waves), 16000, subtype="FLOAT")
    result, = Transcriber.load(trained_transducer.alone, method=method).transcribe([path])
    texts = [trained.utterances[i].text for i in order]
    owner = np.searchsorted(bounds, [w.midpoint for w in result.words], side="right") - 1
    counts = np.bincount(owner, minlength=len(texts))
    assert np.abs(counts - [len(t.split()) for t in texts]).max() <= 1
    for k in range(len(texts)):
        words = [w for w, o in zip(result.words, owner) if o == k]
        assert words[0].start >= bounds[k] - 0.1, (k, words[0], bounds[k])
        assert words[-1].end <= bounds[k + 1] + 0.1, (k, words[-1], bounds[k + 1])
