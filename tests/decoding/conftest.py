"""Shared fixtures for the decoding tests: a tiny random joint CTC/attention model, a tiny
synth corpus, an experiment directory laid out as `asrkit train` writes it, and the
exhaustive CTC reference (every path enumerated and summed per labelling)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from asrkit.config import compose_train_config
from asrkit.models.build import build_model

TINY = ["encoder=transformer", "encoder.d_model=32", "encoder.num_heads=2",
        "encoder.ffn_dim=64", "encoder.num_layers=1", "decoder.d_model=32",
        "decoder.num_heads=2", "decoder.ffn_dim=64", "decoder.num_layers=2"]


def _tiny_model(vocab_size: int = 12, seed: int = 0, input_layer: str = "conv2d4",
                mel_bins: int = 80, sharpen: float = 6.0, decoder: bool = True):
    """A random tiny model in eval mode; ``sharpen`` scales the output layers so that the
    random distributions are peaky (searches then have clear winners, as trained ones do)."""
    overrides = [*TINY, f"encoder.input_layer={input_layer}",
                 f"data.features.num_mel_bins={mel_bins}", f"vocab_size={vocab_size}"]
    if not decoder:
        overrides = [o for o in overrides if not o.startswith("decoder.")] + ["model=ctc"]
    config = compose_train_config(overrides)
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():
        if model.decoder is not None:
            model.decoder.output_layer.weight.mul_(sharpen)
        for param in model.ctc.parameters():
            param.mul_(sharpen)
    return model, config


def _make_experiment(exp_dir: Path, train_manifest: Path, epoch: int = 3,
                     train_hours: float = 0.5, seed: int = 0, decoder: bool = True) -> Path:
    """exp_dir/{tokenizer/, checkpoints/epoch_N.pt, avg_2.pt} holding a tiny model."""
    from asrkit.data.manifest import read_manifest
    from asrkit.text.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([u.text for u in read_manifest(train_manifest)], "char", None)
    tokenizer.save(exp_dir / "tokenizer")
    model, config = _tiny_model(tokenizer.vocab_size, seed=seed, sharpen=2.0, decoder=decoder)
    config["tokenizer"] = {"dir": str(exp_dir / "tokenizer")}
    (exp_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    for n in (epoch - 1, epoch):
        torch.save({"model": model.state_dict(), "config": config, "epoch": n, "step": 10 * n,
                    "metrics": {"dev_loss": 1.0, "train_hours": train_hours * n / epoch}},
                   exp_dir / "checkpoints" / f"epoch_{n}.pt")
    torch.save({"model": model.state_dict(), "config": config,
                "averaged_from": [f"epoch_{epoch - 1}.pt", f"epoch_{epoch}.pt"]},
               exp_dir / "avg_2.pt")
    return exp_dir


def _collapse(path, blank: int = 0) -> tuple[int, ...]:
    labels, previous = [], None
    for p in path:
        if p != previous and p != blank:
            labels.append(p)
        previous = p
    return tuple(labels)


def _labelling_log_probs(log_probs: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log_probs (T, V) -> {labelling: log P(labelling)}, summing all V^T paths."""
    lp = log_probs.double().tolist()
    totals: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(len(lp[0])), repeat=len(lp)):
        key = _collapse(path, blank)
        totals[key] = totals.get(key, 0.0) + math.exp(sum(lp[t][p] for t, p in enumerate(path)))
    return {k: math.log(v) for k, v in totals.items()}


def _prefix_log_prob(labellings: dict[tuple[int, ...], float], prefix: tuple[int, ...]) -> float:
    """log Σ P(l) over the labellings l that start with ``prefix``."""
    total = sum(math.exp(v) for k, v in labellings.items() if k[: len(prefix)] == prefix)
    return math.log(total) if total > 0 else float("-inf")


@pytest.fixture(autouse=True)
def single_thread():
    """Searches run many small ops: on a busy 2-core machine torch's OpenMP threads spin
    against each other (20x slower here); one intra-op thread is faster and deterministic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model():
    return _tiny_model


@pytest.fixture
def make_experiment():
    return _make_experiment


@pytest.fixture
def ctc_reference():
    return SimpleNamespace(collapse=_collapse, labelling_log_probs=_labelling_log_probs,
                           prefix_log_prob=_prefix_log_prob)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    from asrkit.data.prepare import run_preparer

    out = tmp_path_factory.mktemp("synth")
    run_preparer("synth", None, out, num_utts=20, seed=0)
    return out


@pytest.fixture(scope="session")
def synth_exp(tmp_path_factory, synth_dir) -> Path:
    return _make_experiment(tmp_path_factory.mktemp("exp") / "tiny", synth_dir / "train.jsonl")
