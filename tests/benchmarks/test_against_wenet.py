"""benchmarks/against_wenet.py without WeNet: the alternation, the summary, the batch, and
building "WeNet's" model from a stand-in checkout that has only what the script imports."""

from __future__ import annotations

import statistics
import sys

import pytest
import torch

from benchmarks import against_wenet


def test_steps_alternate_with_each_side_first_in_turn_after_the_warmup():
    calls = []

    def side(name, ms):
        def step():
            calls.append(name)
            return ms[len([c for c in calls if c == name]) - 1]
        return step

    wenet_ms, asrkit_ms = against_wenet.alternate(
        side("w", [0, 10, 20, 30, 40]), side("a", [0, 5, 8, 15, 16]), pairs=4, warmup=1)
    assert calls == ["w", "a", "w", "a", "a", "w", "w", "a", "a", "w"]
    assert wenet_ms == [10, 20, 30, 40] and asrkit_ms == [5, 8, 15, 16]


def test_summary_is_the_median_of_the_pair_ratios_with_quartiles():
    wenet_ms, asrkit_ms = [200, 300, 120, 260, 100], [100, 250, 100, 200, 100]
    ratios = [2.0, 1.2, 1.2, 1.3, 1.0]
    result = against_wenet.summary(wenet_ms, asrkit_ms)
    low, _, high = statistics.quantiles(ratios, n=4)
    assert result == pytest.approx({"ratio": 1.2, "low": low, "high": high,
                                    "wenet_ms": 200, "asrkit_ms": 100})
    assert against_wenet.summary([3.0], [2.0])["ratio"] == pytest.approx(1.5)


def test_the_batch_is_eight_padded_utterances_of_25_tokens():
    batch = against_wenet.make_batch()
    assert batch["feats"].shape == (8, 600, 80)
    assert batch["feat_lens"].tolist() == [600, 580, 560, 540, 520, 500, 480, 460]
    assert batch["feats"][7, 460:].abs().sum() == 0 and batch["feats"][7, 459].abs().sum() > 0
    assert batch["tokens"].shape == (8, 25) and int(batch["tokens"].min()) >= 3
    assert int(batch["tokens"].max()) < against_wenet.VOCAB
    assert torch.equal(batch["tokens"], against_wenet.make_batch()["tokens"])


@pytest.fixture
def isolated_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("wenet", "whisper"):
            del sys.modules[name]


def test_a_directory_without_wenet_is_one_line(tmp_path, isolated_modules):
    with pytest.raises(SystemExit, match=rf"--wenet-src {tmp_path}: no WeNet checkout there"):
        against_wenet.wenet_model(tmp_path)
    (tmp_path / "wenet" / "utils").mkdir(parents=True)
    (tmp_path / "wenet" / "utils" / "init_model.py").write_text("def init_model(a, c): pass\n")
    with pytest.raises(SystemExit, match=rf"--wenet-src {tmp_path}: .*train_conformer.yaml "
                                         rf"not found"):
        against_wenet.wenet_model(tmp_path)


def test_wenet_is_built_by_its_own_init_model_from_its_aishell_config(tmp_path,
                                                                      isolated_modules):
    """A stand-in checkout: a package __init__ that must not run, a module that imports
    whisper's language table, and an init_model recording the config it is given."""
    (tmp_path / "wenet" / "utils").mkdir(parents=True)
    (tmp_path / "wenet" / "__init__.py").write_text("raise ImportError('the CLI: librosa')\n")
    (tmp_path / "wenet" / "utils" / "__init__.py").write_text("")
    (tmp_path / "wenet" / "utils" / "init_model.py").write_text(
        "import torch\n"
        "from whisper.tokenizer import LANGUAGES\n"
        "def init_model(args, configs):\n"
        "    model = torch.nn.Linear(configs['input_dim'], configs['output_dim'])\n"
        "    model.seen = dict(configs, languages=LANGUAGES)\n"
        "    return model, configs\n")
    config = tmp_path / against_wenet.WENET_CONFIG
    config.parent.mkdir(parents=True)
    config.write_text("encoder: conformer\ncmvn: global_cmvn\nmodel_conf:\n  ctc_weight: 0.3\n")
    model = against_wenet.wenet_model(tmp_path)
    assert model.training and model.weight.shape == (against_wenet.VOCAB, 80)
    assert model.seen["encoder"] == "conformer" and model.seen["cmvn"] is None
    assert model.seen["model_conf"] == {"ctc_weight": 0.3}
    if getattr(sys.modules["whisper"], "__file__", None) is None:  # the stand-in
        assert model.seen["languages"] == {}
