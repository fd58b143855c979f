"""Speed and memory of one training step (forward, backward, optimiser step) of the presets.

    .venv/bin/python benchmarks/train_step.py                       # synth + aishell presets
    .venv/bin/python benchmarks/train_step.py --presets aishell/conformer --frames 24000
    .venv/bin/python benchmarks/train_step.py --precision bf16      # bf16 autocast (CPU or GPU)
    .venv/bin/python benchmarks/train_step.py --frames 4000 --presets \
        synth/conformer "synth/conformer encoder.input_layer=conv2d8"  # a preset + overrides
    .venv/bin/python benchmarks/train_step.py --presets aishell/conformer --profile 15 \
        --compare HEAD --rounds 3                   # before (HEAD) / after (working tree)

Each measurement runs in a fresh subprocess (so that its peak memory is its own) on a
synthetic batch that fills the sampler's budget: ``--frames`` padded fbank frames (12000,
WeNet's max_frames_in_batch) as utterances of ``--utt-frames`` frames (500 = 5 s), with one
token per 12 frames (about a character of Mandarin or a word piece of English). It prints
input frames/s (and x real time at 100 frames/s), the median ms per step, the model FLOPs of
a step (torch.utils.flop_counter: matmuls, convolutions, attention; forward + backward) and
the FLOP rate they imply; on CUDA also the peak allocated memory and the model-FLOPs
utilisation (MFU = achieved FLOP/s / the GPU's dense peak, ``--peak-tflops`` or a table of
known GPUs), on CPU the peak resident memory of the process. A preset may be followed by
Hydra overrides in the same (quoted) argument; the batch has the encoder's ``input_dim``
mel bins.

Like the trainer (``trainer.keep_freed_memory=true``, asrkit.training.host_memory), the step
keeps freed host memory for reuse; ``--malloc default`` measures with glibc's defaults.

``--compare-malloc`` alternates ``--malloc default`` and ``keep`` in the same way.

``--profile N`` adds where one step's time goes (torch.profiler, self time per op): the N
costliest ops and the shares of matmuls, convolutions, dropout masks, copies and the rest.
``--compare REF`` also measures the asrkit of git revision REF (its ``asrkit`` and ``conf``
trees, extracted to a temporary directory and put first on PYTHONPATH), alternating the two
``--rounds`` times so that a shared machine's drift hits both alike, and prints the ratio
(before ms / after ms, the median of the rounds' ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__:  # imported as benchmarks.train_step (the tests)
    from benchmarks.step_flops import count_step_flops, peak_tflops_for
else:  # run as a script: benchmarks/ is on the path
    from step_flops import count_step_flops, peak_tflops_for

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PRESETS = ("synth/transformer", "synth/conformer", "aishell/conformer")
# op names (without "aten::") -> the category a profile line counts toward; a name ending in
# "*" is a prefix
OP_CATEGORIES = {
    "matmuls": ("mm", "addmm", "bmm", "baddbmm", "addbmm", "matmul", "linear",
                "_scaled_dot_product*", "scaled_dot_product*", "flex_attention*"),
    "convolutions": ("*convolution*", "conv1d", "conv2d", "conv_depthwise2d*"),
    "dropout masks": ("bernoulli_", "bernoulli", "random_", "uniform_", "native_dropout",
                      "rand", "randint"),
    "copies": ("copy_", "contiguous", "clone", "_to_copy", "cat", "to"),
}


def synthetic_batch(frames: int, utt_frames: int, vocab_size: int, device: torch.device,
                    mel_bins: int = 80) -> dict[str, torch.Tensor]:
    batch = max(1, frames // utt_frames)
    tokens_per_utt = max(1, utt_frames // 12)
    gen = torch.Generator().manual_seed(0)
    return {
        "feats": torch.randn(batch, utt_frames, mel_bins, generator=gen).to(device),  # (B, T, F)
        "feat_lens": torch.full((batch,), utt_frames, device=device),
        "tokens": torch.randint(3, vocab_size, (batch, tokens_per_utt), generator=gen).to(device),
        "token_lens": torch.full((batch,), tokens_per_utt, device=device),
    }


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    return peak_tflops_for(torch.cuda.get_device_name(device))


def op_category(name: str) -> str:
    """The profile category of an op name (``aten::addmm`` -> matmuls)."""
    short = name.removeprefix("aten::")
    for category, patterns in OP_CATEGORIES.items():
        for pattern in patterns:
            core = pattern.strip("*")
            if (short == pattern
                    or (pattern.startswith("*") and pattern.endswith("*") and core in short)
                    or (pattern.endswith("*") and not pattern.startswith("*")
                        and short.startswith(core))):
                return category
    return "other"


def profile_breakdown(events: list[tuple[str, float, int]], top: int) -> dict:
    """events: (op name, self time in ms over the profiled steps, calls) -> the ``top`` ops
    and the share of each category, both by self time."""
    total = sum(ms for _, ms, _ in events) or 1.0
    ops = sorted(events, key=lambda e: -e[1])[:top]
    categories: dict[str, float] = {}
    for name, ms, _ in events:
        categories[op_category(name)] = categories.get(op_category(name), 0.0) + ms
    return {"total_ms": total,
            "ops": [{"op": n, "ms": ms, "share": ms / total, "calls": c} for n, ms, c in ops],
            "categories": {k: v / total for k, v in sorted(categories.items(),
                                                           key=lambda kv: -kv[1])}}


def keep_freed_memory_as_the_trainer() -> None:
    """asrkit.training.host_memory.keep_freed_memory of this working tree, loaded from its
    file, so that a ``--compare`` revision from before it existed is measured alike."""
    import importlib.util

    path = ROOT / "asrkit" / "training" / "host_memory.py"
    spec = importlib.util.spec_from_file_location("working_tree_host_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.keep_freed_memory()


def measure(preset: str, args: argparse.Namespace) -> dict:
    """One preset in this process: the figures as a dict."""
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model
    from asrkit.training.optim import build_optimizer
    from asrkit.training.precision import resolve_precision

    if args.malloc == "keep":  # as the trainer does (trainer.keep_freed_memory=true)
        keep_freed_memory_as_the_trainer()
    device = torch.device(args.device if args.device != "auto" else
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    name, *overrides = preset.split()
    config = compose_train_config([f"+experiment={name}", f"vocab_size={args.vocab_size}",
                                   *overrides])
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer = build_optimizer(config["optim"], model)
    precision = resolve_precision(args.precision, device)
    batch = synthetic_batch(args.frames, args.utt_frames, args.vocab_size, device,
                            config["encoder"].get("input_dim", 80))

    def step() -> None:
        with precision.autocast():
            out = model(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
        loss = out["loss"]
        (precision.scaler.scale(loss) if precision.scaler else loss).backward()
        if precision.scaler:
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = count_step_flops(step)  # after the timing (step_flops.py says why)
    frames = int(batch["feat_lens"].sum())
    result = {
        "preset": preset, "device": str(device) if device.type == "cpu" else
        torch.cuda.get_device_name(device), "precision": precision.name,
        "threads": torch.get_num_threads(),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": f"{batch['feats'].size(0)}x{batch['feats'].size(1)}",
        "ms_per_step": 1000 * seconds, "ms_all": [round(1000 * t, 1) for t in times],
        "frames_per_s": frames / seconds, "x_real_time": frames / seconds / 100.0,
        "gflop_per_step": flops / 1e9, "tflop_per_s": flops / seconds / 1e12,
    }
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        peak = peak_tflops(device, args.peak_tflops)
        result["mfu"] = result["tflop_per_s"] / peak if peak else None
    else:
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        # on a GPU the time that counts is the kernels' (self device time), not the launches'
        on_gpu = device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
        with profile(activities=activities) as prof:
            step()
            sync()
        events = [(e.key, (e.self_device_time_total if on_gpu else e.self_cpu_time_total)
                   / 1000.0, e.count) for e in prof.key_averages()
                  if not e.key.startswith(("ProfilerStep", "autograd::", "Optimizer."))]
        result["profile"] = profile_breakdown(events, args.profile)
    return result


def print_table(rows: list[dict], label: str = "") -> None:
    mem = "peak_mem_gib" if any("peak_mem_gib" in r for r in rows) else "peak_rss_gib"
    width = max(20, *(len(r["preset"]) for r in rows))
    if label:
        print(label)
    print(f"{'preset':<{width}} {'params':>7} {'batch':>8} {'prec':>5} {'ms/step':>8} "
          f"{'frames/s':>9} {'x RT':>6} {'GFLOP':>7} {'TFLOP/s':>8} {mem:>12}"
          + ("  MFU" if mem == "peak_mem_gib" else ""))
    for r in rows:
        line = (f"{r['preset']:<{width}} {r['params_m']:>6.1f}M {r['batch']:>8} "
                f"{r['precision']:>5} {r['ms_per_step']:>8.0f} {r['frames_per_s']:>9,.0f} "
                f"{r['x_real_time']:>6.1f} {r['gflop_per_step']:>7.1f} "
                f"{r['tflop_per_s']:>8.3f} {r[mem]:>12.2f}")
        if mem == "peak_mem_gib":
            line += f"  {r['mfu']:.1%}" if r.get("mfu") is not None else "  ?"
        print(line)
    print(f"device: {rows[0]['device']}, {rows[0]['threads']} threads")


def print_profile(row: dict, label: str = "") -> None:
    prof = row["profile"]
    print(f"profile of one step, {row['preset']}{label} (self time, "
          f"{prof['total_ms']:,.0f} ms profiled):")
    print("  by category: " + ", ".join(f"{k} {v:.1%}" for k, v in prof["categories"].items()))
    for op in prof["ops"]:
        print(f"  {op['op']:<52} {op['ms']:>9.1f} ms {op['share']:>6.1%} {op['calls']:>6} calls")


def child_command(args_list: list[str], preset: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args_list, "--one", preset]


def run_child(args_list: list[str], preset: str, pythonpath: str | None = None) -> dict | None:
    env = dict(os.environ)
    if pythonpath:  # the baseline's asrkit first on the path; cwd there for its conf/
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(child_command(args_list, preset), capture_output=True, text=True,
                         check=False, env=env, cwd=pythonpath or ROOT)
    if out.returncode != 0:
        print(f"{preset}{' (baseline)' if pythonpath else ''}: failed\n{out.stderr[-2000:]}",
              file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def extract_revision(ref: str, into: Path) -> Path:
    """``asrkit/`` and ``conf/`` of git revision ``ref`` under ``into`` (for PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "asrkit", "conf"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def passthrough_args(argv: list[str]) -> list[str]:
    """The command line without --presets/--compare/--compare-malloc/--rounds/--malloc (each
    child measures one preset, with the --malloc its caller gives it)."""
    out, skip = [], False
    for arg in argv:
        if arg == "--compare-malloc" or arg.startswith(("--malloc=", "--compare=",
                                                         "--rounds=")):
            continue
        if arg in ("--presets", "--compare", "--rounds", "--malloc"):
            skip = True
            continue
        if skip and not arg.startswith("--"):
            continue
        skip = False
        out.append(arg)
    return out


def compare(args: argparse.Namespace, passthrough: list[str]) -> None:
    """Alternate a baseline and the working tree ``--rounds`` times per preset: the baseline
    is git revision ``--compare`` or, with ``--compare-malloc``, the working tree with
    glibc's malloc defaults (``--malloc default``) against freed memory kept (``keep``)."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare_malloc:
            label, baseline, before_args = "malloc defaults", None, [*passthrough, "--malloc",
                                                                      "default"]
            after_args = [*passthrough, "--malloc", "keep"]
        else:
            label, baseline = args.compare, str(extract_revision(args.compare, Path(tmp)))
            before_args = after_args = [*passthrough, "--malloc", args.malloc]
        before: dict[str, list[dict]] = {p: [] for p in args.presets}
        after: dict[str, list[dict]] = {p: [] for p in args.presets}
        for r in range(args.rounds):
            for preset in args.presets:
                order = [(after, None, after_args), (before, baseline, before_args)]
                for store, path, child_args in (order if r % 2 == 0 else order[::-1]):
                    row = run_child(child_args, preset, path)
                    if row:
                        store[preset].append(row)
    for preset in args.presets:
        b, a = before[preset], after[preset]
        if not (a and b):
            continue
        ratios = [x["ms_per_step"] / y["ms_per_step"] for x, y in zip(b, a, strict=False)]
        pick = [min(rows, key=lambda r: r["ms_per_step"]) for rows in (b, a)]
        print_table([{**pick[0], "preset": f"{preset} @ {label}"},
                     {**pick[1], "preset": f"{preset} (working tree)"}],
                    f"{preset}: {len(ratios)} alternating rounds (fastest round shown)")
        print(f"speed-up (before ms / after ms, median of {len(ratios)} rounds): "
              f"{statistics.median(ratios):.3f}  rounds: {[round(x, 3) for x in ratios]}")
        if args.profile:
            print_profile(pick[0], f" @ {label}")
            print_profile(pick[1], " (working tree)")
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    parser.add_argument("--frames", type=int, default=12000, help="padded frames per batch")
    parser.add_argument("--utt-frames", type=int, default=500, help="frames per utterance")
    parser.add_argument("--vocab-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--malloc", default="keep", choices=["keep", "default"],
                        help="keep freed host memory for reuse, as the trainer does, or "
                             "glibc's defaults (trainer.keep_freed_memory=false)")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak, for MFU")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one step and print its N costliest ops")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--compare", metavar="REF", help="also measure git revision REF")
    baseline.add_argument("--compare-malloc", action="store_true",
                          help="also measure with glibc's malloc defaults (--malloc default)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (--compare)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one preset
    args = parser.parse_args()
    args.warmup = max(1, args.warmup)
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    passthrough = passthrough_args(sys.argv[1:])
    if args.compare or args.compare_malloc:
        compare(args, passthrough)
        return
    rows = [row for preset in args.presets
            if (row := run_child([*passthrough, "--malloc", args.malloc], preset))]
    if rows:
        print_table(rows)
        for row in rows:
            if "profile" in row:
                print_profile(row)


if __name__ == "__main__":
    main()
