"""Streaming transducers (asrkit/inference/streaming.py with asrkit/inference/streaming_search.py)
against the offline path, on tiny random-weight causal Conformers with a transducer: a
transducer alone (LSTM prediction network) and a hybrid (stateless prediction network, CTC
head, attention decoder). The streamed N-best of transducer greedy and modified beam search
equals the offline search on the encoder's full forward at the same chunk size (a chunk
larger than the utterance: full context); the partial text after every chunk is the offline
search over the frames so far; a hybrid's rescored result is transducer_rescoring's
combination on the offline N-best; ``asrkit transcribe --streaming`` writes offline
transcription's json / srt of the file and refuses what cannot stream by its flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.bin.transcribe import main as transcribe_main
from asrkit.data.audio import load_audio
from asrkit.data.manifest import read_manifest
from asrkit.decoding.decode_set import encode_batch
from asrkit.decoding.decoding_chunk import DecodingChunk
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import transducer_modified_beam_search
from asrkit.decoding.transducer_search import rescore_transducer_nbest
from asrkit.inference.streaming import StreamingRecognizer
from tests.inference.test_streaming import _experiment, _stream
from tests.inference.transcript_json import assert_same_transcript

BEAM = 4
SMALL = ("transducer.prediction_dim=32", "transducer.joint_dim=32")
EXPERIMENTS = {  # name -> (overrides, blank bias of the random joiner)
    "alone": (("model=transducer", "transducer=lstm", *SMALL), 2.5),
    "hybrid": (("transducer=stateless", "model.transducer_weight=0.5", *SMALL), 0.0),
}


@pytest.fixture(scope="module")
def exp_dirs(tmp_path_factory, synth_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("streaming_transducers")
    return {name: _experiment(root / name, synth_dir / "train.jsonl", True, extra, bias)
            for name, (extra, bias) in EXPERIMENTS.items()}


@pytest.fixture(scope="module")
def exps(exp_dirs):
    return {name: load_experiment(path) for name, path in exp_dirs.items()}


@pytest.fixture(scope="module")
def waves(synth_dir) -> list[torch.Tensor]:
    return [load_audio(u.audio) for u in read_manifest(synth_dir / "test.jsonl")[:2]]


def _offline_enc(exp, wave: torch.Tensor, chunk: DecodingChunk):
    """(enc, enc_lens, ctc or None) of the full forward under ``chunk``'s mask, as decode
    runs it."""
    feats = exp.cmvn(exp.extractor(wave))  # (T, bins)
    with torch.inference_mode():
        enc, lens, ctc, _ = encode_batch(exp.model, feats[None], torch.tensor([len(feats)]),
                                         exp.model.ctc is not None, chunk)
    return enc, lens, ctc


def _offline_search(exp, method: str, enc, lens):
    head = exp.model.transducer
    if method == "transducer_greedy":
        return transducer_greedy_search(head, enc, lens)[0]
    return transducer_modified_beam_search(head, enc, lens, BEAM)[0]


@pytest.mark.parametrize("name, method, chunk_size, left_chunks", [
    ("alone", "transducer_greedy", 10_000, -1),
    ("alone", "transducer_modified_beam", 4, -1),
    ("hybrid", "transducer_modified_beam", 10_000, -1),
    ("hybrid", "transducer_greedy", 4, 2),
    ("hybrid", "transducer_modified_beam", 1, 3),
])
def test_streamed_search_equals_offline_decoding_at_the_chunk_size(exps, waves, name, method,
                                                                   chunk_size, left_chunks):
    """10 000 frames: one chunk, the whole utterance = the full-context decode."""
    exp = exps[name]
    masked = DecodingChunk(0 if chunk_size > 1000 else chunk_size, left_chunks, masked=True)
    recognizer = StreamingRecognizer.from_experiment(exp, chunk_size, left_chunks=left_chunks,
                                                     beam=BEAM, method=method)
    for number, wave in enumerate(waves):
        enc, lens, _ = _offline_enc(exp, wave, masked)
        expected = _offline_search(exp, method, enc, lens)
        recognizer.reset()
        _stream(recognizer, wave, seed=number)
        text = recognizer.finish()
        streamed = recognizer.search.nbest()[0]
        assert [h.tokens for h in streamed] == [h.tokens for h in expected]
        assert [h.score for h in streamed] == pytest.approx([h.score for h in expected],
                                                            abs=1e-3)
        assert len(expected[0].tokens) > 3  # the comparison is between real hypotheses
        assert text == exp.tokenizer.decode(expected[0].tokens)


def test_partial_texts_are_the_search_over_the_frames_so_far(exps, waves):
    exp, wave = exps["hybrid"], waves[0]
    enc, lens, _ = _offline_enc(exp, wave, DecodingChunk(4, -1, masked=True))
    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM)
    assert recognizer.method == "transducer_modified_beam"  # the default with a transducer
    changes, shown = 0, ""
    for start in range(0, wave.numel(), 1600):  # pieces of 0.1 s
        partial = recognizer.accept(wave[start: start + 1600])
        frames = recognizer.offset
        cut = _offline_search(exp, "transducer_modified_beam", enc[:, :frames],
                              torch.tensor([frames]))
        assert partial == (exp.tokenizer.decode(cut[0].tokens) if frames else "")
        changes, shown = changes + (partial != shown), partial
    assert changes > 2
    final = recognizer.finish()  # the last, shorter chunk
    assert recognizer.chunks == -(-int(lens[0]) // 4)  # every encoder frame, once
    assert final == exp.tokenizer.decode(
        _offline_search(exp, "transducer_modified_beam", enc, lens)[0].tokens)


def test_a_hybrid_rescores_the_transducer_nbest(exps, waves):
    """--rescore after a transducer search: transducer_rescoring's combination (0.5 on the
    transducer, 0.2 on CTC, the rest on the attention decoder) of the offline N-best."""
    exp = exps["hybrid"]
    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM, rescore=True)
    for wave in waves:
        enc, lens, ctc = _offline_enc(exp, wave, DecodingChunk(4, -1, masked=True))
        nbest = _offline_search(exp, "transducer_modified_beam", enc, lens)
        expected = rescore_transducer_nbest(exp.model, enc, lens, ctc, [nbest], 0.5, 0.2)[0]
        recognizer.reset()
        _stream(recognizer, wave, seed=3)
        assert recognizer.finish() == exp.tokenizer.decode(expected[0].tokens)
        assert recognizer.final_hypothesis().score == pytest.approx(expected[0].score, abs=1e-3)


@pytest.mark.parametrize("name, fmt", [("alone", "json"), ("hybrid", "json"), ("hybrid", "srt")])
def test_streamed_formats_equal_offline_transcription(exp_dirs, synth_dir, tmp_path, name, fmt):
    """At a chunk larger than the utterance the streamed json / srt of a file are offline
    transcription's (default method transducer_modified_beam, one window): the same text,
    token and word times (the labels' emission frames), confidences and score."""
    audio = read_manifest(synth_dir / "test.jsonl")[1].audio
    common = [str(exp_dirs[name]), audio, "--beam", str(BEAM), "--format", fmt]
    streamed, offline = tmp_path / f"streamed.{fmt}", tmp_path / f"offline.{fmt}"
    assert transcribe_main([*common, "--streaming", "--chunk-size", "10000",
                            "--out", str(streamed)]) == 0
    assert transcribe_main([*common, "--out", str(offline)]) == 0
    if fmt == "srt":
        assert streamed.read_text() == offline.read_text() != ""
        return
    assert_same_transcript(streamed, offline)


def test_transcribe_streaming_a_transducer(exp_dirs, exps, synth_dir, capsys):
    audio = read_manifest(synth_dir / "test.jsonl")[0].audio
    alone = str(exp_dirs["alone"])
    recognizer = StreamingRecognizer.from_experiment(exps["alone"], 4,
                                                     method="transducer_greedy")
    recognizer.accept(load_audio(audio))
    expected = recognizer.finish()
    assert transcribe_main([alone, audio, "--streaming", "--chunk-size", "4",
                            "--method", "transducer_greedy"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{expected}\n" and len(err.splitlines()) > 2  # partials, then the summary
    refused = [
        [alone, audio, "--streaming", "--method", "ctc_prefix_beam"],
        [alone, audio, "--streaming", "--method", "transducer_beam"],
        [alone, audio, "--streaming", "--rescore"],
        [str(exp_dirs["hybrid"]), audio, "--streaming", "--method", "transducer_greedy",
         "--rescore"],
    ]
    for argv in refused:
        assert transcribe_main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(refused)
    assert err[0].startswith("asrkit transcribe: --method: ctc_prefix_beam needs a CTC head")
    assert err[1].startswith("asrkit transcribe: --method transducer_beam: --streaming "
                             "decodes with")
    assert err[2] == "asrkit transcribe: rescore: the model has no attention decoder"
    assert err[3].startswith("asrkit transcribe: rescore: transducer_greedy keeps one")
