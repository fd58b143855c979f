import logging

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from omegaconf import OmegaConf

from asrkit.data.audio import load_audio
from asrkit.data.features import FbankExtractor
from asrkit.data.filters import (
    NO_FRAMES,
    NO_TOKENS,
    TOO_LONG,
    TOO_MANY_TOKENS,
    TOO_SHORT,
    filter_utterances,
)
from asrkit.data.loader import LoadFailureError, build_loader, longest_frames
from asrkit.data.manifest import Utterance, write_manifest
from asrkit.models.subsampling import Conv2dSubsampling
from asrkit.text.registry import train_tokenizer

CONV4 = Conv2dSubsampling(input_dim=80, d_model=4, factor=4)  # the encoders' conv2d4 stack
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


def test_filters_count_each_reason_and_log_the_counts(caplog):
    ex = FbankExtractor()
    utts = [Utterance(f"u{i}", "a.wav", d, "t", "s") for i, d in enumerate([0.05, 1.0, 40.0, 1.0, 1.0])]
    tokens = [[3], [3], [3], [], [3] * 30]  # 1 s = 98 frames -> 23 after conv2d4
    with caplog.at_level(logging.WARNING, logger="asrkit.data.filters"):
        keep, dropped = filter_utterances(utts, tokens, ex, 0.1, 30.0, CONV4.output_lengths,
                                          name="train.jsonl")
    assert keep == [1]
    assert dropped == {TOO_SHORT: 1, TOO_LONG: 1, NO_TOKENS: 1, TOO_MANY_TOKENS: 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = ("train.jsonl: kept 1 of 5 utterances; dropped 1 longer than max_duration, 1 more "
                "tokens than frames after subsampling (a repeat counts twice), 1 no tokens after "
                "tokenization, 1 shorter than min_duration")
    assert warnings == [expected]


def test_without_an_encoder_tokens_are_not_counted():
    utts = [Utterance("u", "a.wav", 1.0, "t", "s")]
    assert filter_utterances(utts, [[3] * 500], FbankExtractor())[0] == [0]
    assert filter_utterances(utts, [[3] * 500], FbankExtractor(),
                             output_lengths=CONV4.output_lengths)[0] == []


def test_without_ctc_only_utterances_with_no_encoder_frame_are_dropped():
    # 0.07 s = 5 fbank frames: none after conv2d4 (7 needed); 1 s = 23 frames
    utts = [Utterance("short", "a.wav", 0.07, "t", "s"), Utterance("long", "b.wav", 1.0, "t", "s")]
    assert CONV4.output_lengths(torch.tensor([5, 7, 98])).tolist() == [0, 1, 23]
    tokens = [[3], [3] * 500]  # far more tokens than frames: a transducer may emit them
    keep, dropped = filter_utterances(utts, tokens, FbankExtractor(),
                                      output_lengths=CONV4.output_lengths, frame_per_token=False)
    assert (keep, dropped) == ([1], {NO_FRAMES: 1})
    keep, dropped = filter_utterances(utts, tokens, FbankExtractor(),
                                      output_lengths=CONV4.output_lengths)
    assert (keep, dropped) == ([], {NO_FRAMES: 1, TOO_MANY_TOKENS: 1})


def test_token_filter_counts_encoder_frames_at_the_fastest_speed():
    ex = FbankExtractor()
    one_second = torch.zeros(16000)
    conv = Conv2dSubsampling(input_dim=80, d_model=4, factor=4)

    def encoder_frames(wave):  # the real thing: fbank, then the conv2d4 stack
        feats = ex(wave)
        return conv(feats[None], torch.tensor([feats.shape[0]]))[0].shape[1]

    at_1_0 = encoder_frames(one_second)
    at_1_1 = encoder_frames(AF.speed(one_second, 16000, 1.1)[0])
    assert (at_1_0, at_1_1) == (23, 21)  # not 98 // 4 = 24
    utt = [Utterance("u", "a.wav", 1.0, "t", "s")]
    for speed, fits in ((1.0, at_1_0), (1.1, at_1_1)):
        distinct = list(range(3, 3 + fits + 1))  # no two equal tokens in a row
        assert filter_utterances(utt, [distinct[:fits]], ex, output_lengths=conv.output_lengths,
                                 fastest_speed=speed)[0] == [0]
        assert filter_utterances(utt, [distinct], ex, output_lengths=conv.output_lengths,
                                 fastest_speed=speed)[0] == []


def test_ctc_filter_counts_a_blank_between_repeated_tokens():
    """CTC puts a blank between two equal tokens in a row: 20 tokens with 10 repeats need 30
    frames, which torch's ctc_loss confirms (finite at 30 frames, infinite at 29)."""
    tokens = [3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12]
    for frames in (29, 30):
        loss = torch.nn.functional.ctc_loss(torch.zeros(frames, 1, 13).log_softmax(-1),
                                            torch.tensor([tokens]), [frames], [20],
                                            reduction="sum")
        assert torch.isinf(loss) == (frames == 29)
    utt = [Utterance("u", "a.wav", 1.0, "t", "s")]  # 23 encoder frames after conv2d4
    keep, dropped = filter_utterances(utt, [tokens], FbankExtractor(),
                                      output_lengths=CONV4.output_lengths)
    assert (keep, dropped) == ([], {TOO_MANY_TOKENS: 1})  # 20 tokens, but 30 frames needed
    assert filter_utterances(utt, [tokens[::2] + [3]], FbankExtractor(),
                             output_lengths=CONV4.output_lengths)[0] == [0]  # 11 distinct


@pytest.mark.parametrize("rate, lengths", [
    (22050, [11608, 12005, 12402, 13394, 13791, 14188, *range(11000, 11600, 7)]),
    (44100, [22819, 23216, 23613, 24010, 24407, 24804, *range(22000, 23200, 13)]),
    (8000, range(4000, 5000, 11)),
])
def test_the_sampler_bound_holds_for_resampled_audio_of_rounded_durations(rate, lengths):
    """The sampler packs by a bound computed from the manifest's duration (rounded to 0.1 ms)
    that must hold for what loading gives: torchaudio's resampling to 16 kHz, then speed 0.9.
    The first lengths of each rate are ones whose rounded duration alone fell a frame short."""
    ex = FbankExtractor()
    short, loose = [], 0
    for n in lengths:
        resampled = AF.resample(torch.zeros(n), rate, 16000)
        frames = ex.num_frames(AF.speed(resampled, 16000, 0.9)[0].numel())
        bound = longest_frames(ex, round(n / rate, 4), 0.9)
        short += [n] if frames > bound else []
        loose = max(loose, bound - frames)
    assert short == [] and loose <= 1


def test_train_loader_filters_for_its_fastest_speed(tmp_path, caplog):
    letters = "abcdefghijklmnopqrstuvwxyz"
    utts = []
    for n in (21, 22, 24):  # a 1 s utterance has 23 encoder frames, 21 when played at 1.1
        sf.write(tmp_path / f"n{n}.wav", np.zeros(16000), 16000)
        utts.append(Utterance(f"n{n}", f"n{n}.wav", 1.0, letters[:n], "s"))
    write_manifest(tmp_path / "m.jsonl", utts)
    tok = train_tokenizer([letters], "char", None)
    assert [len(tok.encode(u.text)) for u in utts] == [21, 22, 24]
    with caplog.at_level(logging.WARNING, logger="asrkit.data.filters"):
        train = build_loader(tmp_path / "m.jsonl", tok, data_cfg(), train=True,
                             output_lengths=CONV4.output_lengths)
    assert [u.id for u in train.dataset.utterances] == ["n21"]
    assert "m.jsonl: kept 1 of 3 utterances; dropped 2 more tokens than frames after subsampling" \
        in caplog.text
    evaluation = build_loader(tmp_path / "m.jsonl", tok, data_cfg(), train=False,
                              output_lengths=CONV4.output_lengths)
    assert [u.id for u in evaluation.dataset.utterances] == ["n21", "n22"]


def feature_lengths(loader, epochs) -> dict[str, set[int]]:
    lengths: dict[str, set[int]] = {}
    for epoch in epochs:
        loader.set_epoch(epoch)
        for batch in loader:
            for uid, length in zip(batch["ids"], batch["feat_lens"].tolist()):
                lengths.setdefault(uid, set()).add(length)
    return lengths


def test_train_loader_speed_perturbs_and_eval_loader_does_not(tmp_path):
    manifest, tok = make_corpus(tmp_path, n=6)
    ex = FbankExtractor()
    expected = {}  # id -> {factor: frames}, from torchaudio's own speed change
    for i in range(6):
        wave = load_audio(tmp_path / f"u{i:02d}.wav")
        expected[f"u{i:02d}"] = {f: ex.num_frames(AF.speed(wave, 16000, f)[0].numel()) if f != 1.0
                                 else ex.num_frames(wave.numel()) for f in (0.9, 1.0, 1.1)}
    train = feature_lengths(build_loader(manifest, tok, data_cfg(), train=True), range(8))
    evaluation = feature_lengths(build_loader(manifest, tok, data_cfg(), train=False), range(3))
    for uid, frames in expected.items():
        assert len(set(frames.values())) == 3
        assert train[uid] == set(frames.values()), uid  # every factor drawn over 8 epochs
        assert evaluation[uid] == {frames[1.0]}, uid


def test_train_batches_fit_the_frame_budget_at_the_slowest_speed(tmp_path):
    manifest, tok = make_corpus(tmp_path)
    loader = build_loader(manifest, tok, data_cfg(speed_perturb=[0.9]), train=True)
    for epoch in range(2):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert sum(len(b["ids"]) for b in batches) == 24
        for b in batches:
            B, T, _ = b["feats"].shape
            assert B * T <= 600, (epoch, b["ids"], T)


def test_eval_features_have_no_dither(tmp_path):
    manifest, tok = make_corpus(tmp_path, n=4)
    loader = build_loader(manifest, tok, data_cfg(), train=False)  # data.features.dither is 1.0
    ex = FbankExtractor()
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        for b in loader:
            for i, uid in enumerate(b["ids"]):
                undithered = ex(load_audio(tmp_path / f"{uid}.wav"))
                assert torch.equal(b["feats"][i, : b["feat_lens"][i]], undithered), (epoch, uid)


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
    longest = [int(b["feat_lens"].max()) for b in batches]
    assert longest == sorted(longest) and longest[0] < longest[-1]  # shortest batches first


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


@pytest.mark.parametrize("fraction, corrupt, stops", [
    (0.25, 6, False), (0.25, 7, True),    # 6 of 24 is exactly 25 %: not more than it
    (0.29, 29, False), (0.29, 30, True),  # int(0.29 * 100) is 28: 29 used to stop it
])
def test_the_failure_limit_is_exact(tmp_path, fraction, corrupt, stops):
    n = 100 if fraction == 0.29 else 24
    manifest, tok = make_corpus(tmp_path, n=n, corrupt=set(range(corrupt)))
    cfg = data_cfg(max_fail_fraction=fraction)
    cfg["sampler"]["max_frames"] = 20000
    loader = build_loader(manifest, tok, cfg, train=False)
    if stops:
        with pytest.raises(LoadFailureError, match=f"{corrupt} of {n} utterances failed"):
            list(loader)
    else:
        assert sum(len(b["ids"]) for b in loader) == n - corrupt


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
    for bad, message in (([], f"--out {tmp_path}: is a directory"),
                         (["--num-mel-bins", "0"], "features.num_mel_bins: must be a positive")):
        out = tmp_path if not bad else tmp_path / "c.json"
        assert cmvn_main(["--manifest", str(manifest), "--out", str(out), *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("asrkit cmvn: ") and message in err and err.count("\n") == 1
    assert frames.mean(0).abs().max() < 1e-3
    assert (frames.std(0, unbiased=False) - 1).abs().max() < 1e-3


def test_ddp_rank_counts_failures_against_its_own_share(tmp_path):
    """Under DDP a rank reads about 1/world_size of the set, so its failures are counted
    against its share: one bad utterance in 12 exceeds 5 %, though 1 in the whole 24 does
    not (int(0.05 * 24) = 1 failure allowed, int(0.05 * 12) = 0)."""
    manifest, tok = make_corpus(tmp_path, corrupt={1})
    whole = build_loader(manifest, tok, data_cfg(max_fail_fraction=0.05), train=False)
    assert len([i for b in whole for i in b["ids"]]) == 23
    raised = []
    for rank in (0, 1):
        loader = build_loader(manifest, tok, data_cfg(max_fail_fraction=0.05), train=False,
                              rank=rank, world_size=2)
        ids = {loader.dataset.utterances[i].id for b in loader.sampler.rank_batches() for i in b}
        share = sum(len(b) for b in loader.sampler.rank_batches())
        if "u01" in ids:
            with pytest.raises(LoadFailureError,
                               match=rf"1 of the {share} utterances rank {rank} loads failed"):
                list(loader)
            raised.append(rank)
        else:
            assert len([i for b in loader for i in b["ids"]]) == share
    assert len(raised) == 1  # u01 is in exactly one rank's share
