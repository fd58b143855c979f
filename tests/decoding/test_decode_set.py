import json
import shutil

import pytest
import soundfile as sf
import torch

from asrkit.config import ConfigError
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.decoding.decode_set import decode_utterances, make_batches
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import search_methods
from asrkit.decoding.search import max_output_lengths

METHODS = ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint"]


def test_batches_respect_size_and_frame_budget():
    frames = [100, 350, 20, 700, 50, 300, 90, 1200]
    batches = make_batches(frames, batch_size=3, max_frames=1000)
    assert sorted(i for b in batches for i in b) == list(range(len(frames)))
    for batch in batches:
        assert len(batch) <= 3
        longest = max(frames[i] for i in batch)
        assert len(batch) * longest <= 1000 or len(batch) == 1
        assert frames[batch[0]] == longest
    assert [7] in batches  # longer than the budget: decoded alone


def test_batched_decoding_equals_per_utterance(synth_exp, synth_dir):
    exp = load_experiment(synth_exp, "avg_2.pt")
    utterances = read_manifest(synth_dir / "train.jsonl")[:6]
    methods = search_methods(METHODS, ["beam=3"], exp.model)
    batched = decode_utterances(exp.model, exp.tokenizer, utterances, exp.extractor, methods,
                                exp.cmvn, batch_size=6)
    alone = decode_utterances(exp.model, exp.tokenizer, utterances, exp.extractor, methods,
                              exp.cmvn, batch_size=1)
    assert list(batched.refs) == [u.id for u in utterances]
    for method in METHODS:
        assert batched.hyps[method] == alone.hyps[method], method
        assert any(batched.hyps[method].values()), f"{method}: every hypothesis empty"
        # the shared features + encoder + CTC head are counted in every method's RTF
        assert batched.rtf[method] > batched.shared_rtf > 0


def test_unreadable_or_too_short_audio_gives_an_empty_hypothesis(synth_exp, synth_dir, tmp_path):
    exp = load_experiment(synth_exp, "avg_2.pt")
    good = read_manifest(synth_dir / "test.jsonl")[0]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    short = tmp_path / "short.wav"
    sf.write(str(short), [0.1] * 200, 16000)  # 12.5 ms: less than one 25 ms window
    tiny = tmp_path / "tiny.wav"
    sf.write(str(tiny), [0.1] * 800, 16000)   # 50 ms: 3 frames, none after 4x subsampling
    utterances = [
        good,
        Utterance("broken", str(broken), 1.0, "some words", "spk"),
        Utterance("missing", str(tmp_path / "nowhere.wav"), 1.0, "more words", "spk"),
        Utterance("short", str(short), 0.0125, "a", "spk"),
        Utterance("tiny", str(tiny), 0.05, "b", "spk"),
    ]
    methods = search_methods(METHODS, ["beam=2"], exp.model)
    for batch_size in (1, 5):
        result = decode_utterances(exp.model, exp.tokenizer, utterances, exp.extractor,
                                   methods, exp.cmvn, batch_size=batch_size)
        assert sorted(uid for uid, _ in result.failed) == ["broken", "missing", "short", "tiny"]
        for method in METHODS:
            assert list(result.hyps[method]) == [u.id for u in utterances]
            assert all(result.hyps[method][uid] == "" for uid, _ in result.failed)


def test_decoding_methods_fail_early_on_a_ctc_only_model(make_experiment, synth_dir, tmp_path):
    exp_dir = make_experiment(tmp_path / "ctc", synth_dir / "train.jsonl", decoder=False)
    exp = load_experiment(exp_dir, "avg_2.pt")
    with pytest.raises(ConfigError, match="'attention' needs an attention decoder"):
        search_methods(["ctc_greedy", "attention"], model=exp.model)
    with pytest.raises(ConfigError, match="unknown method 'beam'"):
        search_methods(["beam"], model=exp.model)


def test_checkpoint_not_found_lists_what_exists(synth_exp):
    with pytest.raises(FileNotFoundError, match="found: avg_2.pt, checkpoints/epoch_2.pt"):
        load_experiment(synth_exp, "avg_10.pt")


def test_experiment_directory_is_self_contained(make_experiment, synth_dir, tmp_path):
    """An experiment copied elsewhere decodes with the original gone: its checkpoints'
    configs name the original's tokenizer directory, but the copy's own tokenizer/ is used."""
    original = make_experiment(tmp_path / "original", synth_dir / "train.jsonl")
    config = torch.load(original / "checkpoints" / "epoch_3.pt", weights_only=False)["config"]
    assert config["tokenizer"]["dir"] == str(original / "tokenizer")
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    expected = load_experiment(original, "checkpoints/epoch_3.pt").tokenizer.units
    shutil.rmtree(original)
    exp = load_experiment(moved, "checkpoints/epoch_3.pt")
    assert exp.tokenizer.units == expected and len(expected) == exp.model.vocab_size
    assert json.dumps(exp.config)  # plain data


def test_search_options_are_validated_and_cap_output_length():
    import torch

    assert max_output_lengths(torch.tensor([10, 3, 1]), 0.5).tolist() == [5, 2, 1]
    with pytest.raises(ConfigError, match=r"^search.attention.max_len_ratio: must be > 0"):
        search_methods(["attention"], ["search.attention.max_len_ratio=0"])
    with pytest.raises(ConfigError, match=r"^beam: must be > 0, got 0"):
        search_methods(["joint"], ["beam=0"])
    with pytest.raises(ConfigError, match=r"^search.joint.beam: must be > 0, got 0"):
        search_methods(["joint"], ["search.joint.beam=0"])
    joint = search_methods(["joint"], ["beam=4", "ctc_weight=0.5"])["joint"]
    assert joint.settings() == {"beam": 4, "ctc_weight": 0.5, "length_penalty": 0.0,
                                "length_norm": False, "pre_beam": None, "max_len_ratio": 1.0}
    rescoring = search_methods(["attention_rescoring"], ["search.attention_rescoring.beam=20"])
    assert rescoring["attention_rescoring"].settings() == {"beam": 20, "ctc_weight": 0.3,
                                                           "top_k": 20}
