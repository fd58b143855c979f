"""Two gloo processes on the CPU: DDP gradients equal single-process gradients on the
combined batch, and a DDP epoch runs through (no hang) with rank 0 alone writing."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

NO_DROPOUT = ("encoder.dropout=0", "encoder.positional_dropout=0", "decoder.dropout=0",
              "decoder.positional_dropout=0", "trainer.max_epochs=1", "trainer.log_interval=1")


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


def worker(rank: int, world_size: int, port: int, config: dict, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from asrkit.training.distributed import init_distributed

    ctx = init_distributed("cpu")
    grads, trainer = gradients(config, shard(combined_batch(), rank, world_size), ctx)
    torch.save(grads, f"{out_dir}/grads_{rank}.pt")
    try:
        status = trainer.train()
    finally:
        trainer.cleanup()
    torch.save({"status": status, "step": trainer.step, "batches": len(trainer.train_loader)},
               f"{out_dir}/result_{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_combined_batch(corpus, tmp_path):
    config = corpus.config(tmp_path / "ddp", *NO_DROPOUT)
    mp.start_processes(worker, args=(2, free_port(), config, str(tmp_path)), nprocs=2,
                       start_method="spawn", join=True)
    single, trainer = gradients(corpus.config(tmp_path / "single", *NO_DROPOUT),
                                combined_batch())
    trainer.cleanup()
    for rank in range(2):
        ddp = torch.load(tmp_path / f"grads_{rank}.pt", weights_only=True)
        assert ddp.keys() == single.keys()
        for name, grad in single.items():
            torch.testing.assert_close(ddp[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    results = [torch.load(tmp_path / f"result_{r}.pt", weights_only=True) for r in range(2)]
    assert [r["status"] for r in results] == [0, 0]
    assert results[0]["step"] == results[1]["step"] == results[0]["batches"] > 0
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "epoch_1.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert "dev_wer" in ckpt["metrics"] and ckpt["metrics"]["dev_utterances"] == 2
    assert not (tmp_path / "single" / "checkpoints" / "epoch_1.pt").exists()
