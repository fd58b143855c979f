import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from asrkit.data.features import FbankExtractor
from asrkit.data.filters import NO_TOKENS, TOO_LONG, TOO_MANY_TOKENS, TOO_SHORT, filter_utterances
from asrkit.data.loader import LoadFailureError, build_loader
from asrkit.data.manifest import Utterance, write_manifest
from asrkit.text.tokenizer import train_tokenizer

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def data_cfg(**overrides):
    cfg = OmegaConf.load("conf/data/default.yaml")
    cfg.num_workers = 0
    cfg.sampler.max_frames = 600
    return OmegaConf.to_container(OmegaConf.merge(cfg, overrides))


def make_corpus(root, n=24, corrupt=()):
    rng = np.random.default_rng(0)
    utts = []
    for i in range(n):
        seconds = 1.0 + 0.1 * (i % 10)
        path = root / f"u{i:02d}.wav"
        if i in corrupt:
            path.write_bytes(b"RIFF....not really a wav file")
        else:
            sf.write(path, 0.1 * rng.standard_normal(int(seconds * 16000)), 16000)
        text = " ".join(WORDS[(i + k) % 10] for k in range(1 + i % 2))
        utts.append(Utterance(f"u{i:02d}", path.name, seconds, text, f"s{i % 3}"))
    write_manifest(root / "m.jsonl", utts)
    return root / "m.jsonl", train_tokenizer([u.text for u in utts], "char", None)


def test_filters_count_each_reason():
    ex = FbankExtractor()
    utts = [Utterance(f"u{i}", "a.wav", d, "t", "s") for i, d in enumerate([0.05, 1.0, 40.0, 1.0, 1.0])]
    tokens = [[3], [3], [3], [], [3] * 30]  # 1 s = 98 frames -> 24 after 4x subsampling
    keep, dropped = filter_utterances(utts, tokens, ex, 0.1, 30.0, 4)
    assert keep == [1]
    assert dropped == {TOO_SHORT: 1, TOO_LONG: 1, NO_TOKENS: 1, TOO_MANY_TOKENS: 1}


def test_eval_loader_batches_everything_in_order_of_length(tmp_path):
    manifest, tok = make_corpus(tmp_path)
    loader = build_loader(manifest, tok, data_cfg(), train=False)
    batches = list(loader)
    ids = sorted(i for b in batches for i in b["ids"])
    assert ids == [f"u{i:02d}" for i in range(24)]
    for b in batches:
        B, T, F = b["feats"].shape
        assert F == 80 and B * T <= 600
        assert b["feat_lens"].max() == T and b["tokens"].shape == (B, b["token_lens"].max())
        assert (b["tokens"][0, b["token_lens"][0]:] == -1).all()
        first = b["ids"][0]
        text = tok.encode(" ".join(WORDS[(int(first[1:]) + k) % 10] for k in range(1 + int(first[1:]) % 2)))
        assert b["tokens"][0, : len(text)].tolist() == text


def test_train_augmentation_is_reproducible_and_worker_independent(tmp_path):
    manifest, tok = make_corpus(tmp_path)
    cfg = data_cfg()
    a, b = build_loader(manifest, tok, cfg, train=True), build_loader(manifest, tok, cfg | {"num_workers": 2}, train=True)
    first, second = list(a), list(b)
    assert [x["ids"] for x in first] == [x["ids"] for x in second]
    for x, y in zip(first, second):
        # same random draws; only the summation order differs (workers run 1 intra-op thread)
        torch.testing.assert_close(x["feats"], y["feats"], atol=1e-3, rtol=1e-5)
    a.set_epoch(1)
    assert [x["ids"] for x in a] != [x["ids"] for x in first]


def test_loader_resumes_mid_epoch_exactly(tmp_path):
    manifest, tok = make_corpus(tmp_path)
    full = build_loader(manifest, tok, data_cfg(), train=True)
    full.set_epoch(3)
    expected = list(full)
    run = build_loader(manifest, tok, data_cfg(), train=True)
    run.set_epoch(3)
    seen = []
    for batch in run:
        seen.append(batch)
        if len(seen) == 3:
            break
    state = run.state_dict()
    assert state["position"] == 3 and state["epoch"] == 3
    resumed = build_loader(manifest, tok, data_cfg(), train=True)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(seen) + len(rest) == len(expected)
    for got, want in zip(seen + rest, expected):
        assert got["ids"] == want["ids"] and torch.equal(got["feats"], want["feats"])


def test_corrupt_audio_is_skipped_and_logged(tmp_path, caplog):
    manifest, tok = make_corpus(tmp_path, corrupt={5})
    loader = build_loader(manifest, tok, data_cfg(max_fail_fraction=0.05), train=False)
    with caplog.at_level(logging.WARNING):
        ids = [i for b in loader for i in b["ids"]]
    assert len(ids) == 23 and "u05" not in ids
    assert loader.failed[0][0] == "u05" and "unreadable audio" in loader.failed[0][1]
    assert any("skipped utterance u05" in r.message for r in caplog.records)


def test_too_many_failures_stop_with_a_message(tmp_path):
    manifest, tok = make_corpus(tmp_path, corrupt={1, 2, 3})
    loader = build_loader(manifest, tok, data_cfg(max_fail_fraction=0.05), train=False)
    with pytest.raises(LoadFailureError, match=r"2 of 24 utterances failed .* last: u0\d: "):
        list(loader)


def test_cmvn_command_matches_loader_features(tmp_path, capsys):
    from asrkit.bin.cmvn import main as cmvn_main
    from asrkit.data.cmvn import GlobalCMVN

    manifest, tok = make_corpus(tmp_path, n=6, corrupt={2})
    assert cmvn_main(["--manifest", str(manifest), "--out", str(tmp_path / "cmvn.json"), "--nj", "0"]) == 0
    out = capsys.readouterr().out
    assert "CMVN over 5 utterances" in out and "1 unreadable" in out
    cmvn = GlobalCMVN.load(tmp_path / "cmvn.json")
    loader = build_loader(manifest, tok, data_cfg(max_fail_fraction=0.5, cmvn=str(tmp_path / "cmvn.json")), train=False)
    frames = torch.cat([b["feats"][i, : b["feat_lens"][i]] for b in loader for i in range(len(b["ids"]))])
    assert cmvn.utterances == 5 and cmvn.frames == frames.shape[0]
    assert frames.mean(0).abs().max() < 1e-3
    assert (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3
