"""Data-parallel training across processes: torchrun, DistributedDataParallel, rank 0.

    torchrun --nproc_per_node=4 -m asrkit train +experiment=... exp_dir=exp/x      # 4 GPUs
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --nproc_per_node=8 -m asrkit train ...
    asrkit train trainer.devices=4 ...      # the same as the first line, launched for you

Each process reads its place from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and joins the process group with NCCL on GPUs or gloo on CPUs. Without those
variables the run is a single process and nothing here touches torch.distributed. Rank 0
alone logs and writes files; the others wait for it at barriers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARS)


def select_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``: the local GPU when there is one, else the CPU."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"trainer.device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.device=cuda but no CUDA device is visible")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(requested_device: str = "auto", timeout_minutes: float = 60.0,
                     ) -> DistributedContext:
    """Join the process group when started by torchrun (or a launcher setting its variables)."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistributedContext(device=select_device(requested_device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = select_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=timedelta(minutes=timeout_minutes),
                                device_id=device if device.type == "cuda" else None)
    return DistributedContext(rank, world, local_rank, device)


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Sum of ``values`` over ranks (in place on every rank; unchanged on one process)."""
    if ctx.is_distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_objects(obj: Any, ctx: DistributedContext) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not ctx.is_distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistributedContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(ctx: DistributedContext) -> None:
    if ctx.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, ctx: DistributedContext) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` under torchrun; the model itself otherwise."""
    if not ctx.is_distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def launch_local(num_processes: int, argv: list[str]) -> int:
    """Re-run ``asrkit train argv`` under torchrun with ``num_processes`` on this machine
    (``trainer.devices=K``); returns torchrun's exit status."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={num_processes}", "-m", "asrkit", "train", *argv]
    log.info("launching %d processes: %s", num_processes, " ".join(command))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get(
        "OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))}
    process = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: Any) -> None:  # torchrun passes it on to the workers
        process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
