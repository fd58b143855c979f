"""Fixtures every test directory shares: a tiny random joint CTC/attention model, tiny synth
corpora (made once per session), an experiment directory laid out as `asrkit train` writes
it, and ``corpus``: 30 synth utterances with a character tokenizer, CMVN statistics and the
overrides of a tiny model that trains in about a second per epoch on a CPU; and
``intra_op_threads``, for fixtures that pin torch's thread count.

tools/test.sh runs the suite in pytest-xdist workers (``-n auto``): each worker gets an
equal share of the cores for torch's threads and for the processes its tests start
(``pytest_configure``), and the fixtures that train a model are made once for all workers
(``made_once``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import torch

from asrkit.config import compose_train_config
from asrkit.models.build import build_model

T = TypeVar("T")


def pytest_configure(config) -> None:
    """In a pytest-xdist worker: torch's intra-op threads, and OMP_NUM_THREADS for the
    processes its tests start, are the worker's share of the cores (one each of two
    workers on two cores: two threads each would make all four wait on each other)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``long(seconds)`` first, the longest first. tools/test.sh has
    pytest-xdist hand tests out one at a time (``--maxschedchunk=1``; by default a worker
    gets a block of a few hundred), so the long ones start at once on different workers,
    instead of queueing on one worker and leaving the others idle at the end."""
    def seconds(item) -> float:
        mark = item.get_closest_marker("long")
        return mark.args[0] if mark is not None else 0.0

    items.sort(key=seconds, reverse=True)  # stable: the rest keep their order


def made_once(tmp_path_factory, name: str, make: Callable[[Path], T]) -> T:
    """``make(root)`` once per test session for all pytest-xdist workers: the first worker
    to ask makes it in a directory the workers share and pickles what it returns; the
    others wait for it (an flock) and unpickle that. If it fails, the others fail at once
    with its error instead of making it again. Without workers (or with workers that do
    not share the session's directory), root is under this process's temporary directory."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER") and base.name.startswith("popen-"):
        base = base.parent  # the session's directory, holding each worker's popen-gwN
    made, failed = base / f"{name}.pickle", base / f"{name}.failed"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if failed.exists():
            raise RuntimeError(f"making {name} failed in another worker: {failed.read_text()}")
        if made.exists():
            return pickle.loads(made.read_bytes())
        try:
            result = make(base / name)
        except BaseException as error:
            failed.write_text(f"{type(error).__name__}: {error}")
            raise
        made.write_bytes(pickle.dumps(result))
        return result


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside, restored on exit."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


TINY = ["encoder=transformer", "encoder.d_model=32", "encoder.num_heads=2",
        "encoder.ffn_dim=64", "encoder.num_layers=1", "decoder.d_model=32",
        "decoder.num_heads=2", "decoder.ffn_dim=64", "decoder.num_layers=2"]


def _tiny_model(vocab_size: int = 12, seed: int = 0, input_layer: str = "conv2d4",
                mel_bins: int = 80, sharpen: float = 6.0, decoder: bool = True,
                extra: tuple[str, ...] = ()):
    """A random tiny model in eval mode; ``sharpen`` scales the output layers so that the
    random distributions are peaky (searches then have clear winners, as trained ones do).
    ``extra``: more overrides (e.g. a transducer branch)."""
    overrides = [*TINY, f"encoder.input_layer={input_layer}",
                 f"data.features.num_mel_bins={mel_bins}", f"vocab_size={vocab_size}"]
    if not decoder:
        overrides = [o for o in overrides if not o.startswith("decoder.")] + ["model=ctc"]
    config = compose_train_config([*overrides, *extra])
    torch.manual_seed(seed)
    model = build_model(config).eval()
    with torch.no_grad():
        if model.decoder is not None:
            model.decoder.output_layer.weight.mul_(sharpen)
        for param in model.ctc.parameters() if model.ctc is not None else ():
            param.mul_(sharpen)
    return model, config


def _make_experiment(exp_dir: Path, train_manifest: Path, epoch: int = 3,
                     train_hours: float = 0.5, seed: int = 0, decoder: bool = True,
                     extra: tuple[str, ...] = ()) -> Path:
    """exp_dir/{tokenizer/, checkpoints/epoch_N.pt, avg_2.pt} holding a tiny model."""
    from asrkit.data.manifest import read_manifest
    from asrkit.text.registry import train_tokenizer

    tokenizer = train_tokenizer([u.text for u in read_manifest(train_manifest)], "char", None)
    tokenizer.save(exp_dir / "tokenizer")
    model, config = _tiny_model(tokenizer.vocab_size, seed=seed, sharpen=2.0, decoder=decoder,
                                extra=extra)
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


@pytest.fixture
def tiny_model():
    return _tiny_model


@pytest.fixture
def make_experiment():
    return _make_experiment


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    from asrkit.data.prepare import run_preparer

    out = tmp_path_factory.mktemp("synth")
    run_preparer("synth", None, out, num_utts=20, seed=0)
    return out


@pytest.fixture(scope="session")
def synth_exp(tmp_path_factory, synth_dir) -> Path:
    return _make_experiment(tmp_path_factory.mktemp("exp") / "tiny", synth_dir / "train.jsonl")


TINY_MODEL = [
    "+experiment=synth/transformer", "data.features.num_mel_bins=80",
    "encoder.num_layers=1", "encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
    "decoder.num_layers=1", "decoder.d_model=32", "decoder.num_heads=2", "decoder.ffn_dim=64",
    "data.num_workers=0", "data.sampler.max_frames=1500", "data.sampler.num_buckets=2",
    "optim.lr=0.002", "scheduler=warmup_linear", "scheduler.warmup_steps=5",
    "trainer.log_interval=1", "trainer.progress_bar=false", "trainer.num_attention_images=2",
    # fp32 whatever the CPU: `auto` means bf16 on CPUs with native bf16, and tests that compare
    # numbers must not depend on which machine runs them (test_precision covers `auto`)
    "trainer.precision=fp32",
]


class Corpus:
    def __init__(self, root: Path):
        from asrkit.data.compute_cmvn import compute_global_cmvn
        from asrkit.data.features import FbankExtractor
        from asrkit.data.manifest import read_manifest
        from asrkit.data.prepare import run_preparer
        from asrkit.text.registry import train_tokenizer

        self.root = root
        run_preparer("synth", None, root, num_utts=30, seed=0)
        self.train, self.dev = root / "train.jsonl", root / "dev.jsonl"
        texts = [u.text for u in read_manifest(self.train)]
        self.tokenizer = root / "char"
        train_tokenizer(texts, "char", None).save(self.tokenizer)
        self.cmvn = root / "cmvn.json"
        compute_global_cmvn(self.train, FbankExtractor())[0].save(self.cmvn)

    def overrides(self, exp_dir: Path, *extra: str) -> list[str]:
        """Overrides of a tiny model on this corpus, training into ``exp_dir``."""
        return [*TINY_MODEL, f"exp_dir={exp_dir}", f"data.train={self.train}",
                f"data.dev={self.dev}", f"data.cmvn={self.cmvn}",
                f"tokenizer.dir={self.tokenizer}", *extra]

    def config(self, exp_dir: Path, *extra: str) -> dict:
        return compose_train_config(self.overrides(exp_dir, *extra))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("synth30"))


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The trained synth model of the transcription and export tests (made once per
    session; tests/inference/synth_model.py)."""
    from tests.inference.synth_model import synth_model

    return made_once(tmp_path_factory, "synth_model", synth_model)


@pytest.fixture(scope="session")
def trained_transducer(trained, tmp_path_factory):
    """Transducers trained on ``trained``'s encoder (tests/inference/synth_transducer.py)."""
    from tests.inference.synth_transducer import synth_transducer

    return made_once(tmp_path_factory, "synth_transducer",
                     lambda root: synth_transducer(trained, root))
