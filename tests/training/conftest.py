"""Shared data for the training tests: a 30-utterance synth corpus (made once per session),
a character tokenizer, CMVN statistics, and the overrides of a tiny model that trains in
about a second per epoch on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asrkit.config import compose_train_config

TINY_MODEL = [
    "+experiment=synth/transformer", "data.features.num_mel_bins=80",
    "encoder.num_layers=1", "encoder.d_model=32", "encoder.num_heads=2", "encoder.ffn_dim=64",
    "decoder.num_layers=1", "decoder.d_model=32", "decoder.num_heads=2", "decoder.ffn_dim=64",
    "data.num_workers=0", "data.sampler.max_frames=1500", "data.sampler.num_buckets=2",
    "optim.lr=0.002", "scheduler=warmup_linear", "scheduler.warmup_steps=5",
    "trainer.log_interval=1", "trainer.progress_bar=false", "trainer.num_attention_images=2",
]


class Corpus:
    def __init__(self, root: Path):
        from asrkit.data.compute_cmvn import compute_global_cmvn
        from asrkit.data.features import FbankExtractor
        from asrkit.data.manifest import read_manifest
        from asrkit.data.prepare import run_preparer
        from asrkit.text.tokenizer import train_tokenizer

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


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these tiny models gain nothing from two, and a shared 2-core
    machine makes two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("synth30"))
