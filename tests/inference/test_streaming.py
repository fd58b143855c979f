"""Streaming recognition (asrkit/inference/streaming.py) against the offline path, on a tiny
random-weight causal Conformer with an attention decoder and CMVN: the streamed final text
(CTC prefix beam, and attention rescoring) equals offline decoding of the same audio at the
same chunk size (whole utterance = full context); partial texts equal the prefix beam
search over the frames seen so far; ``asrkit transcribe --streaming`` prints the same text,
writes the json / srt / ctm of offline transcription, and refuses a non-causal model by its
key; ``asrkit decode decoding_chunk_size=N`` writes beside the full-context results, with
the streamed texts. Transducers stream in tests/inference/test_streaming_transducer.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asrkit.bin.transcribe import main as transcribe_main
from asrkit.config import compose_train_config
from asrkit.data.audio import load_audio
from asrkit.data.cmvn import CMVNAccumulator
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import read_manifest
from asrkit.decoding.attention_rescoring import attention_rescoring
from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
from asrkit.decoding.decode_set import encode_batch
from asrkit.decoding.decoding_chunk import DecodingChunk
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import make_plan
from asrkit.decoding.run import decode_and_score
from asrkit.inference.streaming import StreamingRecognizer
from asrkit.inference.streaming_files import stream_file
from asrkit.models.build import build_model
from asrkit.text.registry import train_tokenizer
from tests.inference.transcript_json import assert_same_transcript

SMALL = ["encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
         "encoder.num_layers=2", "encoder.input_channels=16", "encoder.kernel_size=5",
         "decoder.d_model=32", "decoder.num_heads=2", "decoder.ffn_dim=64",
         "decoder.num_layers=1"]
BEAM = 4


def _experiment(root: Path, train_manifest: Path, causal: bool,
                extra: tuple[str, ...] = (), blank_bias: float = 0.0) -> Path:
    """exp_dir with tokenizer/, cmvn.json and checkpoints/last.pt of a random model whose
    CTC head, decoder output and transducer joiner are sharpened (clear winners, as a
    trained model has). ``extra``: more overrides (e.g. a transducer branch);
    ``blank_bias``: added to the joiner's blank logit (a trained transducer emits mostly
    blanks; a random one may emit its cap of labels on every frame)."""
    utterances = read_manifest(train_manifest)
    tokenizer = train_tokenizer([u.text for u in utterances], "char", None)
    tokenizer.save(root / "tokenizer")
    preset = "synth/conformer_streaming" if causal else "synth/conformer"
    config = compose_train_config([f"+experiment={preset}", *SMALL,
                                   f"vocab_size={tokenizer.vocab_size}", *extra])
    extractor = FbankExtractor.from_config(config["data"])
    accumulator = CMVNAccumulator(extractor.num_mel_bins)
    for utt in utterances[:5]:
        accumulator.add(extractor(load_audio(utt.audio)))
    accumulator.result().save(root / "cmvn.json")
    torch.manual_seed(0)
    model = build_model(config).eval()
    with torch.no_grad():
        for param in model.ctc.parameters() if model.ctc is not None else ():
            param.mul_(6.0)
        if model.decoder is not None:
            model.decoder.output_layer.weight.mul_(4.0)
        if model.transducer is not None:
            output = model.transducer.joiner.output
            output.weight.mul_(4.0)
            output.bias[model.transducer.blank_id] += blank_bias
    config["tokenizer"] = {"dir": str(root / "tokenizer")}
    (root / "checkpoints").mkdir(parents=True)
    torch.save({"model": model.state_dict(), "config": config, "epoch": 1, "step": 1},
               root / "checkpoints" / "last.pt")
    return root


@pytest.fixture(scope="module")
def streaming_exp(tmp_path_factory, synth_dir) -> Path:
    return _experiment(tmp_path_factory.mktemp("streaming_exp"), synth_dir / "train.jsonl",
                       causal=True)


@pytest.fixture(scope="module")
def exp(streaming_exp):
    return load_experiment(streaming_exp)


@pytest.fixture(scope="module")
def waves(synth_dir) -> list[torch.Tensor]:
    return [load_audio(u.audio) for u in read_manifest(synth_dir / "test.jsonl")[:3]]


def _offline(exp, wave: torch.Tensor, chunk: DecodingChunk):
    """(enc, enc_lens, ctc) of the full forward under ``chunk``'s mask, as decode runs it."""
    feats = exp.cmvn(exp.extractor(wave))  # (T, bins)
    with torch.inference_mode():
        enc, lens, ctc, _ = encode_batch(exp.model, feats[None], torch.tensor([len(feats)]),
                                         True, chunk)
    return enc, lens, ctc


def _stream(recognizer: StreamingRecognizer, wave: torch.Tensor, seed: int) -> list[str]:
    """Feed ``wave`` in random pieces of 1..3200 samples; -> the partial text after each."""
    generator = torch.Generator().manual_seed(seed)
    partials, start = [], 0
    while start < wave.numel():
        size = int(torch.randint(1, 3201, (), generator=generator))
        partials.append(recognizer.accept(wave[start: start + size]))
        start += size
    return partials


@pytest.mark.parametrize("chunk_size, left_chunks", [(10_000, -1), (4, -1), (4, 2), (1, 3)])
def test_streamed_text_equals_offline_decoding_at_the_chunk_size(exp, waves, chunk_size,
                                                                 left_chunks):
    """10 000 frames: one chunk, the whole utterance = full context decoding."""
    masked = DecodingChunk(0 if chunk_size > 1000 else chunk_size, left_chunks, masked=True)
    nonempty = 0
    for number, wave in enumerate(waves):
        enc, lens, ctc = _offline(exp, wave, masked)
        expected = ctc_prefix_beam_search(ctc, lens, BEAM, exp.model.blank_id)[0]
        rescored = attention_rescoring(exp.model, enc, lens, ctc, BEAM, 0.3)[0]
        recognizer = StreamingRecognizer.from_experiment(exp, chunk_size,
                                                         left_chunks=left_chunks, beam=BEAM,
                                                         rescore=True)
        _stream(recognizer, wave, seed=number)
        recognizer.finish()
        streamed_enc = torch.cat(recognizer.encoded, dim=1)  # (1, T', D)
        assert streamed_enc.shape == enc.shape
        torch.testing.assert_close(streamed_enc, enc, atol=1e-4, rtol=1e-4)
        ctc_best = recognizer.search.nbest()[0]
        assert [h.tokens for h in ctc_best] == [h.tokens for h in expected]
        assert [h.score for h in ctc_best] == pytest.approx([h.score for h in expected],
                                                            abs=1e-3)
        assert recognizer.final_hypothesis().tokens == rescored[0].tokens
        assert recognizer.finish() == exp.tokenizer.decode(rescored[0].tokens)
        nonempty += len(expected[0].tokens) > 0
    assert nonempty == len(waves)  # the comparison is between real hypotheses


def test_partial_texts_follow_the_chunks(exp, waves):
    """After every chunk the partial text is the best prefix over the frames seen so far:
    the offline search cut at that frame. Chunks of 4 encoder frames at 4x subsampling
    and a 10 ms shift: one every 0.16 s of audio, fed in pieces of 0.1 s."""
    wave = waves[0]
    _, lens, ctc = _offline(exp, wave, DecodingChunk(4, -1, masked=True))
    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM)
    partials, chunks_after = [], []
    piece = 1600  # 0.1 s
    for start in range(0, wave.numel(), piece):
        partials.append(recognizer.accept(wave[start: start + piece]))
        chunks_after.append(recognizer.chunks)
        frames = recognizer.offset
        cut = ctc_prefix_beam_search(ctc[:, :frames], torch.tensor([frames]), BEAM,
                                     exp.model.blank_id)[0]
        assert partials[-1] == (exp.tokenizer.decode(cut[0].tokens) if frames else "")
    final = recognizer.finish()
    changes = sum(a != b for a, b in zip([""] + partials, partials))
    assert changes > 1
    assert recognizer.chunks == -(-int(lens[0]) // 4)  # every encoder frame, once
    assert chunks_after[0] == 0 and chunks_after[-1] > chunks_after[len(chunks_after) // 2] > 0
    assert final == exp.tokenizer.decode(
        ctc_prefix_beam_search(ctc, lens, BEAM, exp.model.blank_id)[0][0].tokens)


def test_transcribe_streaming_prints_the_recognizers_text(exp, streaming_exp, synth_dir,
                                                         capsys):
    utterances = read_manifest(synth_dir / "test.jsonl")[:2]
    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM, rescore=True)
    expected = [stream_file(recognizer, u.audio).text for u in utterances]
    assert transcribe_main([str(streaming_exp), utterances[0].audio, "--streaming",
                            "--chunk-size", "4", "--beam", str(BEAM), "--rescore"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{expected[0]}\n"
    partial_lines = err.splitlines()[:-1]  # then the summary line
    assert len(partial_lines) > 1 and "transcribed 1 file" in err.splitlines()[-1]
    assert transcribe_main([str(streaming_exp), *(u.audio for u in utterances),
                            "--streaming", "--chunk-size", "4", "--beam", str(BEAM),
                            "--rescore", "--piece", "0.37"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [f"{u.audio}\t{t}" for u, t in zip(utterances, expected)]
    assert transcribe_main([str(streaming_exp), utterances[0].audio, "--streaming",
                            "--method", "attention_rescoring"]) == 2
    assert transcribe_main([str(streaming_exp), utterances[0].audio, "--rescore"]) == 2
    assert transcribe_main([str(streaming_exp), utterances[0].audio, "--streaming",
                            "--chunk-size", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("asrkit transcribe: --method attention_rescoring: --streaming "
                             "decodes with ctc_prefix_beam, transducer_greedy, ")
    assert err[1] == "asrkit transcribe: --rescore: only with --streaming"
    assert err[2] == "asrkit transcribe: --chunk-size must be >= 1, got 0"


def test_streamed_audio_is_checked_like_offline_audio(exp, streaming_exp, waves, tmp_path,
                                                      capsys, monkeypatch):
    """accept takes integer PCM as soundfile scales it and refuses several channels or NaN,
    leaving the utterance as it was; a file too short for one encoder frame fails as offline
    (named once, exit 1); --threads is applied when streaming too."""
    import numpy as np
    import soundfile as sf

    from asrkit.data.audio import AudioError

    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM)
    pcm = (waves[0] * 32768).round().clamp(-32768, 32767).to(torch.int16)
    recognizer.accept(pcm.float() / 32768)
    expected = recognizer.finish()
    recognizer.reset()
    with pytest.raises(AudioError, match=r"expected \(n,\) mono samples, got shape \(10, 2\)"):
        recognizer.accept(torch.zeros(10, 2))
    with pytest.raises(AudioError, match="1 non-finite samples"):
        recognizer.accept(torch.tensor([0.0, float("nan")]))
    assert recognizer.samples == 0
    recognizer.accept(pcm.numpy())
    assert recognizer.finish() == expected
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(480, "float32"), 16000)  # 30 ms: 1 fbank frame
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert transcribe_main([str(streaming_exp), str(short), "--streaming", "--threads", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"asrkit transcribe: {short}: too short for the encoder (no encoder "
                      f"frames from 0.030 s)")
    assert err[1].startswith("transcribed 1 file (1 failed): ") and err[1].endswith("RTF n/a (no audio)")
    assert threads == [1]


@pytest.mark.parametrize("fmt", ["json", "srt", "ctm"])
def test_streamed_formats_equal_offline_transcription(streaming_exp, synth_dir, tmp_path, fmt):
    """At a chunk larger than the utterance (full context) the streamed json / srt / ctm of
    a file are offline transcription's with the same search (one window): the same text,
    token and word times (CTC forced alignment), confidences and score."""
    audio = read_manifest(synth_dir / "test.jsonl")[0].audio
    common = [str(streaming_exp), audio, "--beam", str(BEAM), "--format", fmt]
    streamed, offline = tmp_path / f"streamed.{fmt}", tmp_path / f"offline.{fmt}"
    assert transcribe_main([*common, "--streaming", "--chunk-size", "10000",
                            "--out", str(streamed)]) == 0
    assert transcribe_main([*common, "--method", "ctc_prefix_beam", "--out", str(offline)]) == 0
    if fmt != "json":
        assert streamed.read_text() == offline.read_text() != ""
        return
    assert_same_transcript(streamed, offline)


def test_a_non_causal_model_is_refused_naming_encoder_causal(tmp_path, synth_dir, capsys):
    offline = _experiment(tmp_path / "offline", synth_dir / "train.jsonl", causal=False)
    audio = read_manifest(synth_dir / "test.jsonl")[0].audio
    assert transcribe_main([str(offline), audio, "--streaming"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith("asrkit transcribe: encoder.causal:")
    with pytest.raises(ValueError, match="encoder.causal"):
        StreamingRecognizer.from_experiment(load_experiment(offline), 4)


def test_decode_at_a_chunk_size_writes_beside_full_context(exp, streaming_exp, synth_dir,
                                                           capsys):
    test_set = synth_dir / "test.jsonl"
    base = [f"exp_dir={streaming_exp}", f"test_sets=[{test_set}]",
            "methods=[ctc_prefix_beam]", f"beam={BEAM}"]
    full, = decode_and_score(make_plan(base))
    chunked, = decode_and_score(make_plan([*base, "decoding_chunk_size=4"]))
    limited, = decode_and_score(make_plan([*base, "decoding_chunk_size=4",
                                           "num_decoding_left_chunks=2"]))
    sets = streaming_exp / "decode" / "last" / "test"
    names = sorted(p.name for p in sets.iterdir())
    assert names == [f"ctc_prefix_beam-beam{BEAM}-top_k{BEAM}",
                     f"ctc_prefix_beam-beam{BEAM}-top_k{BEAM}-chunk_size4",
                     f"ctc_prefix_beam-beam{BEAM}-top_k{BEAM}-chunk_size4-left_chunks2"]
    assert full["decode"] == {"beam": BEAM, "top_k": BEAM}
    assert chunked["decode"] == {"beam": BEAM, "top_k": BEAM, "chunk_size": 4,
                                 "left_chunks": None}
    assert limited["decode"]["left_chunks"] == 2
    # the chunked decode's hypotheses are what streaming at chunk 4 gives
    recognizer = StreamingRecognizer.from_experiment(exp, 4, beam=BEAM)
    hyps = dict(line.split(" ", 1) if " " in line else (line, "") for line in
                (sets / names[1] / "hyp.txt").read_text(encoding="utf-8").splitlines())
    utterances = read_manifest(test_set)
    assert hyps == {u.id: stream_file(recognizer, u.audio).text for u in utterances}
    assert json.loads((sets / names[1] / "wer.json").read_text())["decode"]["chunk_size"] == 4


def test_decoding_chunk_size_is_checked(streaming_exp, synth_dir):
    from asrkit.config import ConfigError

    base = [f"exp_dir={streaming_exp}", f"test_sets=[{synth_dir / 'test.jsonl'}]",
            "methods=[ctc_greedy]"]
    with pytest.raises(ConfigError, match="decoding_chunk_size"):
        make_plan([*base, "decoding_chunk_size=-2"])
    with pytest.raises(ConfigError, match="num_decoding_left_chunks"):
        make_plan([*base, "num_decoding_left_chunks=-3"])


def test_a_corrupt_checkpoint_fails_like_offline(streaming_exp, synth_dir, tmp_path, capsys):
    """A checkpoint whose bytes differ from its hash: exit 1 (the file, not the command),
    streamed or not."""
    import shutil

    from asrkit.checkpoint_io import atomic_save

    exp = tmp_path / "exp"
    shutil.copytree(streaming_exp, exp)
    checkpoint = atomic_save(torch.load(exp / "checkpoints" / "last.pt", weights_only=True),
                             exp / "checkpoints" / "epoch_1.pt")  # with its content hash
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    checkpoint.write_bytes(bytes(data))
    audio = read_manifest(synth_dir / "test.jsonl")[0].audio
    for streaming in ([], ["--streaming"]):
        status = transcribe_main([str(exp), audio, "--checkpoint", str(checkpoint), *streaming])
        err = capsys.readouterr().err
        assert status == 1 and "corrupt checkpoint" in err and len(err.splitlines()) == 1
