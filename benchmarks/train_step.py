"""Speed and memory of one training step (forward, backward, optimiser step) of the presets.

    .venv/bin/python benchmarks/train_step.py                       # synth + aishell presets
    .venv/bin/python benchmarks/train_step.py --presets aishell/conformer --frames 24000
    .venv/bin/python benchmarks/train_step.py --precision bf16      # on a GPU: bf16 autocast
    .venv/bin/python benchmarks/train_step.py --frames 4000 --presets \
        synth/conformer "synth/conformer encoder.input_layer=conv2d8"  # a preset + overrides

Each preset runs in a fresh subprocess (so that its peak memory is its own) on a synthetic
batch that fills the sampler's budget: ``--frames`` padded fbank frames (12000, WeNet's
max_frames_in_batch) as utterances of ``--utt-frames`` frames (500 = 5 s), with one token
per 12 frames (about a character of Mandarin or a word piece of English). It prints input
frames/s (and × real time at 100 frames/s), ms per step, the model FLOPs of a step
(torch.utils.flop_counter: matmuls, convolutions, attention; forward + backward) and the
FLOP rate they imply; on CUDA also the peak allocated memory and the model-FLOPs
utilisation (MFU = achieved FLOP/s / the GPU's dense peak, ``--peak-tflops`` or a table of
known GPUs), on CPU the peak resident memory of the process. A preset may be followed by
Hydra overrides in the same (quoted) argument; the batch has the encoder's ``input_dim``
mel bins.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

DEFAULT_PRESETS = ("synth/transformer", "synth/conformer", "aishell/conformer")
# dense bf16 tensor-core peak, TFLOP/s (vendor data sheets)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0,
                    "RTX 4090": 165.0, "RTX 3090": 71.0}


def synthetic_batch(frames: int, utt_frames: int, vocab_size: int, device: torch.device,
                    mel_bins: int = 80) -> dict[str, torch.Tensor]:
    batch = max(1, frames // utt_frames)
    tokens_per_utt = max(1, utt_frames // 12)
    gen = torch.Generator().manual_seed(0)
    return {
        "feats": torch.randn(batch, utt_frames, mel_bins, generator=gen).to(device),  # (B, T, 80)
        "feat_lens": torch.full((batch,), utt_frames, device=device),
        "tokens": torch.randint(3, vocab_size, (batch, tokens_per_utt), generator=gen).to(device),
        "token_lens": torch.full((batch,), tokens_per_utt, device=device),
    }


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def measure(preset: str, args: argparse.Namespace) -> dict:
    """One preset in this process: the figures as a dict."""
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model
    from asrkit.training.optim import build_optimizer
    from asrkit.training.precision import resolve_precision

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

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()  # also the first warm-up step
    flops = counter.get_total_flops()
    for _ in range(args.warmup - 1):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    frames = int(batch["feat_lens"].sum())
    result = {
        "preset": preset, "device": str(device) if device.type == "cpu" else
        torch.cuda.get_device_name(device), "precision": precision.name,
        "threads": torch.get_num_threads(),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "batch": f"{batch['feats'].size(0)}x{batch['feats'].size(1)}",
        "ms_per_step": 1000 * seconds, "frames_per_s": frames / seconds,
        "x_real_time": frames / seconds / 100.0, "gflop_per_step": flops / 1e9,
        "tflop_per_s": flops / seconds / 1e12,
    }
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        peak = peak_tflops(device, args.peak_tflops)
        result["mfu"] = result["tflop_per_s"] / peak if peak else None
    else:
        result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def print_table(rows: list[dict]) -> None:
    mem = "peak_mem_gib" if any("peak_mem_gib" in r for r in rows) else "peak_rss_gib"
    width = max(20, *(len(r["preset"]) for r in rows))
    header = (f"{'preset':<{width}} {'params':>7} {'batch':>8} {'prec':>5} {'ms/step':>8} "
              f"{'frames/s':>9} {'x RT':>6} {'GFLOP':>7} {'TFLOP/s':>8} {mem:>12}"
              + ("  MFU" if mem == "peak_mem_gib" else ""))
    print(header)
    for r in rows:
        line = (f"{r['preset']:<{width}} {r['params_m']:>6.1f}M {r['batch']:>8} {r['precision']:>5} "
                f"{r['ms_per_step']:>8.0f} {r['frames_per_s']:>9,.0f} {r['x_real_time']:>6.1f} "
                f"{r['gflop_per_step']:>7.1f} {r['tflop_per_s']:>8.3f} {r[mem]:>12.2f}")
        if mem == "peak_mem_gib":
            line += f"  {r['mfu']:.1%}" if r.get("mfu") is not None else "  ?"
        print(line)
    print(f"device: {rows[0]['device']}, {rows[0]['threads']} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS))
    parser.add_argument("--frames", type=int, default=12000, help="padded frames per batch")
    parser.add_argument("--utt-frames", type=int, default=500, help="frames per utterance")
    parser.add_argument("--vocab-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--peak-tflops", type=float, help="the device's dense peak, for MFU")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one preset
    args = parser.parse_args()
    args.warmup = max(1, args.warmup)
    if args.one:
        print(json.dumps(measure(args.one, args)))
        return
    rows = []
    passthrough = [a for a in sys.argv[1:]]
    if "--presets" in passthrough:  # drop the preset list; each child measures one
        i = passthrough.index("--presets")
        j = i + 1
        while j < len(passthrough) and not passthrough[j].startswith("--"):
            j += 1
        passthrough = passthrough[:i] + passthrough[j:]
    for preset in args.presets:
        out = subprocess.run([sys.executable, __file__, *passthrough, "--one", preset],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{preset}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if rows:
        print_table(rows)


if __name__ == "__main__":
    main()
