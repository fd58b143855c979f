"""Data-parallel training across processes: torchrun, DistributedDataParallel, rank 0.

    torchrun --nproc_per_node=4 -m asrkit train +experiment=... exp_dir=exp/x      # 4 GPUs
    torchrun --nnodes=2 --node_rank=0 --master_addr=HOST --nproc_per_node=8 -m asrkit train ...
    asrkit train trainer.devices=4 ...      # 4 local ranks started by asrkit (launch_local)

Each process reads its place from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and joins the process group with NCCL on GPUs or gloo on CPUs (and on GPUs
shared by several ranks, ``distributed_backend``). Without those
variables the run is a single process and nothing here touches torch.distributed. Rank 0
alone logs and writes files; the others wait for it at barriers.

Two kinds of agreement between ranks: facts the host knows (a batch that failed to load, a
stop signal, an out-of-memory forward) are OR-ed over a gloo group of CPU tensors
(``any_on_host``: no GPU involved, so no wait for the GPU's queue), facts only the device
knows (a non-finite loss) over the default group on the device (``any_on_device``: NCCL's
all-reduce is queued like any kernel, and the host never reads the result).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
LAUNCHER_PID = "ASRKIT_LAUNCHER_PID"  # set by launch_local for its ranks
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    host_group: Any = None  # a gloo group for CPU tensors when the default one is NCCL

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def under_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARS)


def repeats_another_process() -> bool:
    """Whether this process would only repeat the config's notes another has printed: a
    rank started by launch_local (its launcher composed the same config) or a torchrun rank
    other than 0."""
    return LAUNCHER_PID in os.environ or os.environ.get("RANK", "0") != "0"


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
    follow_launcher()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    device = select_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = distributed_backend(device, int(os.environ.get("LOCAL_WORLD_SIZE") or 0))
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=timedelta(minutes=timeout_minutes),
                                device_id=device if backend == "nccl" else None)
    host_group = dist.new_group(backend="gloo") if backend == "nccl" else None
    return DistributedContext(rank, world, device, host_group)


def distributed_backend(device: torch.device, local_ranks: int) -> str:
    """NCCL when each local rank has a GPU of its own; gloo on CPUs, and when ranks share a
    GPU (NCCL refuses two ranks on one device): slower, but DDP's logic runs the same, so a
    machine with one GPU can check a multi-rank run (benchmarks/gpu_check.py's ddp).
    ``local_ranks``: the ranks on this machine (torchrun's ``LOCAL_WORLD_SIZE``; 0 when a
    launcher does not say: one rank per GPU is assumed)."""
    if device.type != "cuda":
        return "gloo"
    if local_ranks > torch.cuda.device_count():
        print(f"asrkit: {local_ranks} ranks share {torch.cuda.device_count()} GPU(s): DDP over "
              f"gloo (NCCL takes one rank per GPU; slower)", file=sys.stderr, flush=True)
        return "gloo"
    return "nccl"


def follow_launcher() -> None:
    """In a rank started by ``launch_local``: be sent SIGTERM when the launcher dies (killed,
    say, so that it cannot pass a signal on), so that no rank is left running without it;
    the ranks then stop as after a SIGTERM (Linux; elsewhere nothing is done)."""
    launcher = os.environ.get(LAUNCHER_PID)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(launcher):  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def lost_a_rank(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank has gone (its process
    exited and its connections closed: gloo's transport errors, torch's DistNetworkError);
    that rank's own error says why."""
    if isinstance(error, dist.DistNetworkError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        mark in text for mark in ("gloo/transport", "Connection closed by peer",
                                  "Connection reset by peer"))


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def any_on_host(flags: list[bool], ctx: DistributedContext) -> list[bool]:
    """Each flag OR-ed over ranks, through CPU tensors (the host group): no device sync."""
    if not ctx.is_distributed:
        return flags
    values = torch.tensor([float(f) for f in flags])
    dist.all_reduce(values, op=dist.ReduceOp.MAX, group=ctx.host_group)
    return [v > 0 for v in values.tolist()]


def any_on_device(flag: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """A 0-d bool device tensor OR-ed over ranks, on the device (queued, never read here)."""
    if not ctx.is_distributed:
        return flag
    value = flag.to(torch.float32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return value > 0


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


def cleanup(ctx: DistributedContext, synchronize: bool = False) -> None:
    """Leave the process group; ``synchronize``: after a barrier, where every rank is known
    to come (a rank that failed alone would wait there for ever)."""
    if ctx.is_distributed and dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, ctx: DistributedContext,
               find_unused_parameters: bool = False) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` under torchrun; the model itself otherwise.
    ``find_unused_parameters``: for an objective that leaves parameters out of the graph
    (MWER fine-tuning: the CTC head, InterCTC heads, intermediate decoders); DDP then marks
    them ready after each backward, at the cost of a walk over the graph. Training proper
    needs none: every parameter gets a gradient, zero for idle experts."""
    if not ctx.is_distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def launch_local(num_processes: int, argv: list[str], grace_s: float = 30.0,
                 command: list[str] | None = None) -> int:
    """Run ``asrkit train argv`` as ``num_processes`` ranks on this machine
    (``trainer.devices=K``), each with the variables torchrun would give it; returns the
    run's exit status: 0, 130/143 when stopped by SIGINT/SIGTERM, else that of a rank killed
    by a signal (128 + N, named in a line), else the lowest failing rank's.

    Not torchrun itself: it takes a rank's 130 for a failure, kills the other ranks (SIGKILL
    30 s later), exits 1 and prints its own SignalException traceback. Each rank runs in a
    session of its own, so a terminal's Ctrl-C reaches this process alone, which passes
    SIGINT/SIGTERM on to every rank once (a second SIGINT would make a rank raise
    KeyboardInterrupt); the ranks agree to stop, write the checkpoint and exit together. A
    hangup (SIGHUP: the terminal closed) is passed on as SIGTERM, unless it is ignored (run
    under ``nohup``), and a rank whose launcher dies gets SIGTERM too (``follow_launcher``),
    so no rank is left running on its own.
    Once a rank has exited, the others get ``grace_s`` seconds to follow before they are
    killed: a rank that failed alone leaves the others blocked at their next collective.
    ``command``: what each rank runs before ``argv`` (``asrkit train``; tests)."""
    command = [*(command or [sys.executable, "-m", "asrkit", "train"]), *argv]
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // num_processes)))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "WORLD_SIZE": str(num_processes), "LOCAL_WORLD_SIZE": str(num_processes),
           "OMP_NUM_THREADS": threads, LAUNCHER_PID: str(os.getpid())}
    ranks: list[subprocess.Popen] = []
    received: list[int] = []

    def forward(signum: int, _frame: Any) -> None:
        signum = signal.SIGTERM if signum == signal.SIGHUP else signum
        received.append(signum)
        for process in ranks:
            process.send_signal(signum)  # nothing once it has exited

    signals = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # nohup: a hangup stays ignored
        signals.append(signal.SIGHUP)
    previous = {s: signal.signal(s, forward) for s in signals}
    try:
        for rank in range(num_processes):
            ranks.append(subprocess.Popen(command, start_new_session=True,
                                          env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}))
            for signum in received:  # a signal that came while the ranks were starting
                ranks[-1].send_signal(signum)
        return _wait_for_ranks(ranks, grace_s)
    finally:
        for process in ranks:  # only if this process itself failed
            if process.poll() is None:
                process.kill()
                process.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait_for_ranks(ranks: list[subprocess.Popen], grace_s: float) -> int:
    """The exit status of the run: a rank's death by signal N (128 + N; a line names the
    rank and the signal: the others then fail at their next collective), else the lowest
    rank's non-zero status among the ranks that exited by themselves, else 0; kills the
    ranks still running ``grace_s`` after the first exit."""
    first_exit = None
    while None in (codes := [process.poll() for process in ranks]):
        if first_exit is None and codes != [None] * len(ranks):
            first_exit = time.monotonic()
        if first_exit is not None and time.monotonic() - first_exit > grace_s:
            break
        time.sleep(0.1)
    statuses, killed = [], []
    for rank, process in enumerate(ranks):
        if process.poll() is None:
            print(f"asrkit train: rank {rank} still running {grace_s:.0f} s after another rank "
                  f"exited; killed", file=sys.stderr, flush=True)
            process.kill()
            process.wait()
            continue
        code = process.returncode
        statuses.append(128 - code if code < 0 else code)
        if code < 0:
            killed.append(128 - code)
            print(f"asrkit train: rank {rank} was killed by {signal.Signals(-code).name}",
                  file=sys.stderr, flush=True)
    return next((status for status in [*killed, *statuses] if status), 0)


def _free_port() -> int:
    """A TCP port free on this machine now (rank 0's rendezvous store listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
