"""Two gloo processes on the CPU: DDP gradients equal single-process gradients on the
combined batch; a micro-batch that one rank cannot use (its utterances failed to load, its
loss is NaN) is skipped on both, so the ranks take the same steps and keep equal weights;
rank 1 writes nothing; teardown frees the DDP wrapper before the process group. Every run
must exit within a time limit: a hang at a collective or at exit fails the test."""

from __future__ import annotations

import os
import socket
import sys
import time
import weakref
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

NO_DROPOUT = ("encoder.dropout=0", "encoder.positional_dropout=0", "decoder.dropout=0",
              "decoder.positional_dropout=0", "trainer.max_epochs=1", "trainer.log_interval=1")
# one-utterance batches, 10 per rank per epoch (one utterance of the synth corpus is longer)
SMALL_BATCHES = ("data.sampler.max_frames=400", "trainer.accum_grad=2")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker, *args, timeout: float = 120.0) -> None:
    """``worker(rank, *args)`` in 2 spawned processes joined by gloo; fails if one raises or
    they have not all exited (at a collective, or in teardown) after ``timeout`` seconds."""
    context = mp.start_processes(worker, args=(free_port(), *args), nprocs=2,
                                 start_method="spawn", join=False)
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                alive = [r for r, p in enumerate(context.processes) if p.is_alive()]
                raise AssertionError(f"rank(s) {alive} still running after {timeout:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def join_group(rank: int, port: int):
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from asrkit.training.distributed import init_distributed

    return init_distributed("cpu")


def record_writes(under: Path) -> list[str]:
    """Every path under ``under`` this process opens for writing, renames, creates or
    removes from now on (a PEP 578 audit hook; it stays for the process's life)."""
    under, seen = str(under), []

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            if not args[2] & WRITE_FLAGS:  # open()'s mode and os.open() both give the flags
                return
            paths = [args[0]]
        elif event in ("os.rename", "shutil.copyfile"):
            paths = [args[1]]
        elif event in ("os.mkdir", "os.remove", "os.rmdir", "os.symlink"):
            paths = [args[0]]
        else:
            return
        seen.extend(f"{event} {p}" for p in map(os.fsdecode, paths) if p.startswith(under))

    sys.addaudithook(hook)
    return seen


def finish(trainer, rank: int, out_dir: str, status: int, writes: list[str]) -> None:
    """Clean up, then save what the test compares. The DDP wrapper must be gone by then:
    its reducer freed while the process group lives, not at interpreter exit, where it can
    deadlock in the gloo group's destructor."""
    import torch.distributed as dist

    if not hasattr(trainer, "steps"):  # setup failed: let its error through
        trainer.cleanup()
        return
    ddp = weakref.ref(trainer.steps.ddp)
    trainer.cleanup(synchronize=status is not None)
    torch.save({"status": status, "step": trainer.step, "counters": dict(trainer.counters),
                "batches": len(trainer.train_loader), "writes": list(writes),
                "ddp_freed": ddp() is None, "group_destroyed": not dist.is_initialized(),
                "weights": trainer.model.state_dict()}, f"{out_dir}/result_{rank}.pt")


def results(out_dir: Path) -> list[dict]:
    out = [torch.load(out_dir / f"result_{r}.pt", weights_only=True) for r in range(2)]
    for rank, result in enumerate(out):
        assert result["ddp_freed"] and result["group_destroyed"], rank
    assert out[0]["writes"], "rank 0 wrote nothing: the audit hook missed its files"
    assert out[1]["writes"] == [], f"rank 1 wrote: {out[1]['writes']}"
    for name, value in out[0]["weights"].items():
        assert torch.equal(value, out[1]["weights"][name]), f"{name} differs between ranks"
    return out


# ---- gradients on the combined batch ----------------------------------------------------
def combined_batch() -> dict:
    """Four utterances of equal length (no padding differences between the shards)."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 27, (4, 6), generator=gen)
    token_lens = torch.tensor([6, 4, 5, 3])
    tokens[torch.arange(6) >= token_lens[:, None]] = -1
    return {"ids": ["a", "b", "c", "d"], "feats": torch.randn(4, 120, 80, generator=gen),
            "feat_lens": torch.full((4,), 120), "tokens": tokens, "token_lens": token_lens}


def shard(batch: dict, rank: int, world_size: int) -> dict:
    size = len(batch["ids"]) // world_size
    part = slice(rank * size, (rank + 1) * size)
    return {k: v[part] for k, v in batch.items()}


def gradients(config: dict, batch: dict, ctx=None) -> tuple[dict, object]:
    from asrkit.training.trainer import Trainer

    trainer = Trainer(config, ctx)
    trainer.setup()
    out = trainer.steps.forward(batch, sync=True)
    assert trainer.steps.backward(out["loss"], batch, sync=True)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.steps.optimizer.zero_grad(set_to_none=True)
    return grads, trainer


def gradients_worker(rank: int, port: int, config: dict, out_dir: str) -> None:
    ctx = join_group(rank, port)
    writes = record_writes(Path(config["exp_dir"]))
    grads, trainer = gradients(config, shard(combined_batch(), rank, 2), ctx)
    torch.save(grads, f"{out_dir}/grads_{rank}.pt")
    status = None
    try:
        status = trainer.train()
    finally:
        finish(trainer, rank, out_dir, status, writes)


@pytest.mark.long(15)
def test_two_gloo_processes_match_one_process_on_the_combined_batch(corpus, tmp_path):
    config = corpus.config(tmp_path / "ddp", *NO_DROPOUT)
    run_ranks(gradients_worker, config, str(tmp_path))
    single, trainer = gradients(corpus.config(tmp_path / "single", *NO_DROPOUT),
                                combined_batch())
    trainer.cleanup()
    for rank in range(2):
        ddp = torch.load(tmp_path / f"grads_{rank}.pt", weights_only=True)
        assert ddp.keys() == single.keys()
        for name, grad in single.items():
            torch.testing.assert_close(ddp[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    out = results(tmp_path)  # and rank 1 wrote nothing: not its log, events or checkpoints
    assert [r["status"] for r in out] == [0, 0]
    assert out[0]["step"] == out[1]["step"] == out[0]["batches"] > 0
    written = "\n".join(out[0]["writes"])
    for name in ("train.log", "checkpoints/epoch_1.pt", "tensorboard/events.", "config.yaml"):
        assert f"ddp/{name}" in written, name
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert "dev_wer" in ckpt["metrics"] and ckpt["metrics"]["dev_utterances"] == 2
    assert not (tmp_path / "single" / "checkpoints" / "epoch_1.pt").exists()
    assert "[rank 1]" not in (tmp_path / "ddp" / "train.log").read_text()


# ---- micro-batches one rank cannot use ---------------------------------------------------
def train_worker(rank: int, port: int, config: dict, out_dir: str, nan_at: int = 0) -> None:
    """One epoch; with ``nan_at``, rank 1's loss is NaN at that micro-batch."""
    from asrkit.training.trainer import Trainer

    ctx = join_group(rank, port)
    writes = record_writes(Path(config["exp_dir"]))
    trainer, status = Trainer(config, ctx), None
    try:
        trainer.setup()
        if nan_at and rank == 1:
            forward, calls = trainer.steps.forward, []

            def nan_forward(batch: dict, sync: bool):
                out = forward(batch, sync)
                calls.append(sync)
                if len(calls) == nan_at:
                    out = {**out, "loss": out["loss"] * float("nan")}
                return out

            trainer.steps.forward = nan_forward
        status = trainer.train()
    finally:
        finish(trainer, rank, out_dir, status, writes)


def rank_batch_ids(config: dict, corpus, rank: int) -> list[list[str]]:
    """The utterance ids of ``rank``'s batches in epoch 1, as the trainer's sampler makes them."""
    from asrkit.data.loader import build_loader
    from asrkit.text.registry import load_tokenizer

    loader = build_loader(corpus.train, load_tokenizer(corpus.tokenizer), config["data"],
                          train=True, rank=rank, world_size=2)
    loader.set_epoch(1)
    utts = loader.dataset.utterances
    return [[utts[i].id for i in batch] for batch in loader.sampler.rank_batches()]


@pytest.mark.long(15)
def test_a_batch_that_failed_to_load_on_one_rank_is_skipped_on_both(corpus, tmp_path):
    from asrkit.data.manifest import read_manifest, write_manifest

    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES)
    # unreadable audio for all of rank 0's first micro-batch (the first of update 1) and
    # all of rank 1's fourth (the last of update 2, which is then dropped on both ranks)
    broken = {*rank_batch_ids(config, corpus, 0)[0], *rank_batch_ids(config, corpus, 1)[3]}
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF....not a wav file")
    utts = [replace(u, audio=str(bad_wav)) if u.id in broken else u
            for u in read_manifest(corpus.train)]
    write_manifest(tmp_path / "train.jsonl", utts)
    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES,
                           f"data.train={tmp_path / 'train.jsonl'}", "data.max_fail_fraction=0.5")
    run_ranks(train_worker, config, str(tmp_path), timeout=90)
    out = results(tmp_path)
    assert [r["status"] for r in out] == [0, 0]
    assert out[0]["batches"] == out[1]["batches"] == 10
    assert out[0]["step"] == out[1]["step"] == 4  # 5 updates, one lost with its last batch


@pytest.mark.long(15)
def test_a_nan_loss_on_one_rank_skips_the_update_on_both(corpus, tmp_path):
    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES)
    run_ranks(train_worker, config, str(tmp_path), 4)  # the last micro-batch of update 2
    out = results(tmp_path)
    assert [r["status"] for r in out] == [0, 0]
    assert out[0]["step"] == out[1]["step"] == 4  # 5 updates less the skipped one
    assert out[0]["counters"]["nan_skipped"] == out[1]["counters"]["nan_skipped"] == 1


@pytest.mark.long(15)
def test_mwer_fine_tuning_leaves_the_ctc_head_out_and_ddp_copes(corpus, tmp_path):
    """MWER's objective gives the CTC head no gradient (mwer_ctc_weight 0): DDP must be told,
    or the second update fails ("Expected to have finished reduction ...")."""
    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES,
                           "trainer.mwer.enabled=true", "trainer.mwer.beam=2",
                           "trainer.mwer.nbest=2")
    run_ranks(train_worker, config, str(tmp_path), timeout=120)
    out = results(tmp_path)
    assert [r["status"] for r in out] == [0, 0]
    assert out[0]["step"] == out[1]["step"] == 5


@pytest.mark.parametrize("device, ranks, gpus, backend", [
    ("cpu", 2, 0, "gloo"), ("cuda:0", 1, 1, "nccl"), ("cuda:1", 2, 2, "nccl"),
    ("cuda:0", 2, 1, "gloo"),  # two ranks on one GPU: NCCL would refuse the duplicate device
    ("cuda:1", 8, 4, "gloo"),
    ("cuda:3", 0, 8, "nccl"),  # a launcher that does not say how many ranks are local
])
def test_ranks_sharing_a_gpu_use_gloo(monkeypatch, device, ranks, gpus, backend):
    from asrkit.training.distributed import distributed_backend

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    assert distributed_backend(torch.device(device), ranks) == backend


def oom_worker(rank: int, port: int, config: dict, out_dir: str, oom_at: int) -> None:
    """One epoch; rank 1's forward pass runs out of memory at micro-batch ``oom_at``. Each
    rank records its micro-batches' losses (the one skipped left out)."""
    from asrkit.training.trainer import Trainer

    ctx = join_group(rank, port)
    writes = record_writes(Path(config["exp_dir"]))
    trainer, status, losses = Trainer(config, ctx), None, []
    try:
        trainer.setup()
        run_out_of_memory(trainer.steps, rank == 1, oom_at, losses)
        status = trainer.train()
        torch.save(losses, f"{out_dir}/losses_{rank}.pt")
    finally:
        finish(trainer, rank, out_dir, status, writes)


def run_out_of_memory(steps, here: bool, oom_at: int, losses: list[float]) -> None:
    """The model as trained raises OutOfMemoryError at call ``oom_at`` (if ``here``);
    ``losses`` gets every other call's loss. (A function of its own: the wrapper must not
    outlive ``release_wrappers`` in the worker's frame, which would keep DDP alive.)"""
    train_model, calls = steps.train_model, []

    def model(*args, **kwargs):
        calls.append(1)
        if here and len(calls) == oom_at:
            raise torch.OutOfMemoryError("simulated")
        out = train_model(*args, **kwargs)
        if len(calls) != oom_at:
            losses.append(out["loss"].item())
        return out

    steps.train_model = model


@pytest.mark.long(15)
def test_out_of_memory_on_one_rank_at_the_end_of_an_update_is_skipped_on_both(corpus,
                                                                             tmp_path):
    """With gradient accumulation: rank 0's synced forward armed DDP's reducer for a
    backward that never came, and the next (no_sync) backward all-reduced on rank 0 alone
    (gloo: "collective mismatch", a crash). The epoch's train loss is both ranks' mean."""
    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES)
    run_ranks(oom_worker, config, str(tmp_path), 4, timeout=90)  # the last of update 2
    out = results(tmp_path)  # equal weights on both ranks
    assert [r["status"] for r in out] == [0, 0]
    assert out[0]["step"] == out[1]["step"] == 4  # 5 updates less the dropped one
    assert out[0]["counters"]["oom_skipped"] == out[1]["counters"]["oom_skipped"] == 1
    losses = [torch.load(tmp_path / f"losses_{r}.pt") for r in range(2)]
    assert len(losses[0]) == len(losses[1]) == 9
    ckpt = torch.load(tmp_path / "exp" / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert ckpt["metrics"]["train_loss"] == pytest.approx(sum(losses[0] + losses[1]) / 18,
                                                          rel=1e-6)


def failing_rank_worker(rank: int, port: int, config: dict, out_dir: str) -> None:
    """``asrkit train``'s run_training on two ranks; rank 1 fails at its third micro-batch."""
    from asrkit.training.run import run_training
    from asrkit.training.train_step import TrainingError, TrainStep

    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if rank == 1:
        forward, calls = TrainStep.forward, []

        def failing(self, batch, sync):
            calls.append(1)
            if len(calls) == 3:
                raise TrainingError("simulated failure")
            return forward(self, batch, sync)

        TrainStep.forward = failing
    torch.save(run_training(config), f"{out_dir}/status_{rank}.pt")


@pytest.mark.long(15)
def test_a_rank_that_fails_alone_is_one_line_in_the_log_and_the_other_says_so(corpus,
                                                                            tmp_path, capfd):
    config = corpus.config(tmp_path / "exp", *NO_DROPOUT, *SMALL_BATCHES)
    run_ranks(failing_rank_worker, config, str(tmp_path), timeout=90)  # neither raises
    assert [torch.load(tmp_path / f"status_{r}.pt") for r in range(2)] == [1, 1]
    errors = [line.split(" ERROR ", 1)[1] for line in
              (tmp_path / "exp" / "train.log").read_text().splitlines() if " ERROR " in line]
    assert sorted(errors) == [("asrkit train: rank 0: another rank has exited (its own error "
                              "says why); stopping"), "asrkit train: simulated failure"]
    assert "[rank 1] ERROR asrkit train: simulated failure" in \
        (tmp_path / "exp" / "train.log").read_text()
    assert "Traceback" not in capfd.readouterr().err
