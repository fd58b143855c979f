"""The GPU check (run through benchmarks/gpu_check.sh): one command, one GPU, under 8 minutes.

    benchmarks/gpu_check.sh                         # everything, 450 s budget
    benchmarks/gpu_check.sh --peak-tflops 989 --only steps,train
    benchmarks/gpu_check.sh --budget-s 900 --presets librispeech/conformer_l

Sections, each in its own try (a failed one prints one line, the rest go on) and within a
share of the time budget (what does not fit prints ``skipped``):

1. ``steps``: for synth/conformer, aishell/conformer and librispeech/conformer_l, eager and
   ``torch.compile``d, bf16 autocast, a synthetic batch: ms/step, input frames/s, peak
   memory, model FLOPs of a step (torch.utils.flop_counter, forward + backward), MFU =
   FLOPs / time / the GPU's dense bf16 peak (a table by device name, or ``--peak-tflops``),
   and the attention kernels that ran (CUDA kernel names from torch.profiler). Each cell is
   a subprocess of its own (its own peak memory; a crash or a hung compile costs one cell).
2. ``train``: a synth corpus (``--data``, by default the one benchmarks/gpu_bundle.sh put in
   .gpu_bundle/data; else ``asrkit prepare synth``, skipped with a line if espeak-ng is
   missing), then ``asrkit train`` of synth/conformer for at least 300 updates: the logged
   training loss must fall.
3. ``ddp``: ``asrkit train ... trainer.devices=2`` on that corpus, one epoch: two DDP ranks
   sharing the one GPU (gloo), so that DDP's collectives actually run (``devices=1`` is a
   single process).
4. ``decode``: ``asrkit decode`` of the trained model with every search method in fp32 and
   in bf16 (``precision=bf16``; RTF, WER), and the batched-vs-reference search benchmark
   (benchmarks/decode.py, both precisions) on the GPU.

The parts that need no GPU (options, FLOP/MFU arithmetic, kernel-name classes, the table)
are tested in tests/benchmarks/test_gpu_check.py.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__:  # imported as benchmarks.gpu_check (the tests)
    from benchmarks.step_flops import peak_tflops_for
else:  # run as a script: benchmarks/ is on the path
    from step_flops import peak_tflops_for

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("steps", "train", "ddp", "decode")
BUNDLED_DATA = ROOT / ".gpu_bundle" / "data"
PRESETS = ("synth/conformer", "aishell/conformer", "librispeech/conformer_l")
MODES = ("eager", "compiled")
# per preset: vocabulary, utterances x frames of the synthetic batch
CELL_SHAPES = {"synth/conformer": (100, 64, 400), "aishell/conformer": (4233, 64, 600),
               "librispeech/conformer_l": (5000, 48, 1500)}
# CUDA kernel-name fragments -> attention kernel class, in this order (cuDNN's attention
# kernels have "flash" in their names too; conv kernels may say "cudnn")
KERNEL_CLASSES = (("flex", ("flex",), ()),
                  ("cudnn", ("cudnn",), ("sdpa", "attention", "attn", "fmha")),
                  ("flash", ("flash",), ()),
                  ("efficient", ("fmha", "efficient_attention", "mem_eff"), ()),
                  ("math", ("softmax",), ()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=450.0,
                        help="time budget in seconds (gpu_check.sh stops it 25 s later)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU (MFU)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per cell")
    parser.add_argument("--updates", type=int, default=300, help="training updates (train)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/asrkit_gpu_check"))
    parser.add_argument("--data", type=Path, default=BUNDLED_DATA if BUNDLED_DATA.is_dir()
                        else None, help="a prepared synth corpus (train/dev/test.jsonl, "
                        "cmvn.json of 40 bins, bpe100/; default: .gpu_bundle/data when "
                        "benchmarks/gpu_bundle.sh made it, else one is made with espeak-ng)")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # internal: "preset|mode"
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)} (known: "
                     f"{', '.join(SECTIONS)})")
    unknown = [p for p in args.presets if p not in CELL_SHAPES]
    if unknown:
        parser.error(f"--presets: no batch shape for {', '.join(unknown)} (known: "
                     f"{', '.join(CELL_SHAPES)})")
    args.sections = sections
    return args


def mfu(flops_per_step: float, ms_per_step: float, peak_tflops: float | None) -> float | None:
    """Model-FLOPs utilisation: achieved FLOP/s over the dense peak (None without a peak)."""
    if not peak_tflops or ms_per_step <= 0:
        return None
    return flops_per_step / (ms_per_step / 1000.0) / (peak_tflops * 1e12)


def kernel_class(name: str) -> str | None:
    """The attention kernel class a CUDA kernel name belongs to, or None."""
    lowered = name.lower()
    for cls, any_of, also_one_of in KERNEL_CLASSES:
        if any(f in lowered for f in any_of) and (
                not also_one_of or any(f in lowered for f in also_one_of)):
            return cls
    return None


def attention_kernels(kernel_names: list[str]) -> str:
    """The attention kernel classes among a step's CUDA kernels, e.g. "flex+efficient";
    "math" (softmax kernels, no fused attention kernel) only when nothing fused ran."""
    found = {cls for name in kernel_names if (cls := kernel_class(name))}
    fused = sorted(found - {"math"})
    if fused:
        return "+".join(fused)
    return "math" if "math" in found else "none seen"


def format_table(rows: list[dict]) -> str:
    """The steps table; a failed cell has an ``error``."""
    head = (f"{'preset':<24} {'mode':<8} {'batch':>8} {'ms/step':>8} {'frames/s':>10} "
            f"{'peak GiB':>8} {'TFLOP/s':>8} {'MFU':>6}  attention")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['preset']:<24} {r['mode']:<8} failed: {r['error']}")
            continue
        util = "?" if r.get("mfu") is None else f"{r['mfu']:.1%}"
        lines.append(f"{r['preset']:<24} {r['mode']:<8} {r['batch']:>8} {r['ms_per_step']:>8.1f} "
                     f"{r['frames_per_s']:>10,.0f} {r['peak_mem_gib']:>8.2f} "
                     f"{r['tflop_per_s']:>8.1f} {util:>6}  {r['attention']}")
    return "\n".join(lines)


NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
LOSS_RE = re.compile(r"\bupdate (\d+)\b.*?\bloss " + NUMBER)


def loss_curve(log_text: str) -> list[tuple[int, float]]:
    """(update, loss) of the train log's periodic lines (dev lines say 'dev:')."""
    return [(int(m.group(1)), float(m.group(2))) for line in log_text.splitlines()
            if "dev:" not in line and (m := LOSS_RE.search(line))]


def loss_falls(curve: list[tuple[int, float]], factor: float = 0.8) -> bool:
    """The mean of the last quarter of logged losses is below ``factor`` x the first's."""
    if len(curve) < 4:
        return False
    losses = [loss for _, loss in curve]
    quarter = max(1, len(losses) // 4)
    return sum(losses[-quarter:]) / quarter < factor * sum(losses[:quarter]) / quarter


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def run_cell(spec: str, steps: int) -> dict:
    """One steps-table cell, in this (child) process, on cuda:0."""
    import torch
    from step_flops import count_step_flops  # run_cell runs in the script's own process

    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model
    from asrkit.training.optim import build_optimizer

    preset, mode = spec.split("|")
    vocab, utts, frames = CELL_SHAPES[preset]
    device = torch.device("cuda")
    config = compose_train_config([f"+experiment={preset}", f"vocab_size={vocab}"])
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer = build_optimizer(config["optim"], model)
    mel = config["encoder"].get("input_dim", 80)
    feats = torch.randn(utts, frames, mel, device=device)
    lens = torch.full((utts,), frames, device=device)
    tokens = torch.randint(3, vocab, (utts, frames // 12), device=device)
    token_lens = torch.full((utts,), frames // 12, device=device)
    forward = torch.compile(model) if mode == "compiled" else model

    def step(net) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = net(feats, lens, tokens, token_lens)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up (and the compilation)
        step(forward)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step(forward)
    torch.cuda.synchronize()
    ms = (time.perf_counter() - start) / steps * 1000
    peak_mem = torch.cuda.max_memory_allocated() / 2**30
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        step(forward)
        torch.cuda.synchronize()
    kernels = [e.key for e in prof.key_averages()]
    # the eager model's FLOPs (whatever runs them), counted last: under the counter flex
    # attention falls back to SDPA for the rest of the process (step_flops.py)
    flops = count_step_flops(lambda: step(model))
    name = torch.cuda.get_device_name(device)
    return {"preset": preset, "mode": mode, "batch": f"{utts}x{frames}", "ms_per_step": ms,
            "frames_per_s": utts * frames / (ms / 1000), "peak_mem_gib": peak_mem,
            "gflop_per_step": flops / 1e9, "tflop_per_s": flops / (ms / 1000) / 1e12,
            "device": name, "attention": attention_kernels(kernels)}


def steps_section(args: argparse.Namespace, budget: Budget, share: float) -> None:
    end = time.monotonic() + share
    rows, device_name = [], ""
    cells = [(p, m) for m in args.modes for p in args.presets]  # eager cells first
    for preset, mode in cells:
        left = min(end - time.monotonic(), budget.left())
        if left < 20:
            rows.append({"preset": preset, "mode": mode, "error": "skipped: out of time budget"})
            continue
        try:
            out = subprocess.run([sys.executable, __file__, "--cell", f"{preset}|{mode}",
                                  "--steps", str(args.steps)], capture_output=True, text=True,
                                 timeout=left, cwd=ROOT, check=False)
            if out.returncode != 0:
                last = (out.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"preset": preset, "mode": mode, "error": last[:150]})
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            rows.append({"preset": preset, "mode": mode, "error": f"timed out after {left:.0f} s"})
            continue
        device_name = row["device"]
        row["mfu"] = mfu(row["gflop_per_step"] * 1e9, row["ms_per_step"],
                         peak_tflops_for(device_name, args.peak_tflops))
        rows.append(row)
        print(f"  {preset} {mode}: {row['ms_per_step']:.1f} ms/step", flush=True)
    peak = peak_tflops_for(device_name, args.peak_tflops)
    print(f"\nbf16 training steps on {device_name or 'the GPU'} (MFU against "
          f"{peak if peak else '?'} TFLOP/s dense bf16):")
    print(format_table(rows), flush=True)


def asrkit(*argv: str, timeout: float, log: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(ROOT / ".venv/bin/asrkit"), *argv]
    if not Path(command[0]).exists():
        command = [sys.executable, "-m", "asrkit", *argv]
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         check=False)
    if log is not None:
        log.write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        tail = (out.stderr.strip() or out.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"asrkit {argv[0]} exited {out.returncode}: {' | '.join(tail)}")
    return out


def complete_corpus(data: Path | None) -> bool:
    """A prepared corpus as the training sections use it: manifests, CMVN, tokenizer."""
    return data is not None and all((data / name).exists() for name in
                                    ("train.jsonl", "dev.jsonl", "test.jsonl", "cmvn.json",
                                     "bpe100"))


def corpus_possible(args: argparse.Namespace) -> bool:
    """Whether the train, ddp and decode sections will have a corpus: given complete (--data,
    the bundle) or made here (espeak-ng or flite installed)."""
    return complete_corpus(args.data) or any(shutil.which(tool) for tool in ("espeak-ng", "flite"))


def steps_share(sections: list[str], with_corpus: bool) -> float:
    """The share of the budget the steps table gets: all of it alone; 55 % beside training
    sections that will run; 85 % when they will not (only decode.py's search benchmark,
    about a minute, is left after it)."""
    if sections == ["steps"]:
        return 1.0
    return 0.55 if with_corpus and {"train", "ddp"} & set(sections) else 0.85


def prepare_corpus(args: argparse.Namespace, budget: Budget) -> Path | None:
    """A synth corpus with CMVN and a bpe-100 tokenizer: ``--data``, or one made under the
    work dir (None: no espeak-ng/flite to make one)."""
    if args.data is not None and not complete_corpus(args.data):
        print(f"corpus: --data {args.data} lacks train/dev/test.jsonl, cmvn.json or bpe100/: "
              f"not used")
    for data in (args.data, args.work_dir / "data"):
        if complete_corpus(data):
            count = len((data / "train.jsonl").read_text().splitlines())
            print(f"corpus: {data} ({count} training utterances)")
            return data
    data = args.work_dir / "data"
    if shutil.which("espeak-ng") is None and shutil.which("flite") is None:
        print("train: skipped: neither espeak-ng nor flite is installed (apt-get install "
              "espeak-ng), so no synth corpus can be made")
        return None
    data.mkdir(parents=True, exist_ok=True)
    asrkit("prepare", "synth", "--out", str(data), "--num-utts", "1200", "--seed", "1",
           "--nj", "8", timeout=budget.left())
    asrkit("cmvn", "--manifest", str(data / "train.jsonl"), "--out", str(data / "cmvn.json"),
           "--num-mel-bins", "40", "--nj", "8", timeout=budget.left())
    asrkit("tokenizer", "--manifest", str(data / "train.jsonl"), "--type", "bpe",
           "--vocab-size", "100", "--out", str(data / "bpe100"), timeout=budget.left())
    return data


def train_overrides(data: Path, exp: Path, *extra: str) -> list[str]:
    return ["+experiment=synth/conformer", f"exp_dir={exp}", f"data.train={data}/train.jsonl",
            f"data.dev={data}/dev.jsonl", f"data.cmvn={data}/cmvn.json",
            f"tokenizer.dir={data}/bpe100", "data.features.num_mel_bins=40",
            "data.num_workers=8", "trainer.log_interval=20", "trainer.tensorboard=false",
            "trainer.num_attention_images=0", "trainer.progress_bar=false", *extra]


def updates_per_epoch(log_text: str) -> int:
    """Epoch 1's updates, as the trainer's setup line gives them (``epoch 1: N batches per
    rank, M updates``); 0 when there is none."""
    found = re.findall(r"epoch 1: \d+ batches per rank, (\d+) updates", log_text)
    return int(found[-1]) if found else 0


def train_section(args: argparse.Namespace, budget: Budget, data: Path) -> Path:
    """Train synth/conformer to at least ``args.updates`` updates: one epoch tells how many
    updates an epoch has, a rerun with more epochs resumes from it."""
    exp = args.work_dir / "exp_train"
    shutil.rmtree(exp, ignore_errors=True)
    asrkit("train", *train_overrides(data, exp, "trainer.max_epochs=1"), timeout=budget.left())
    per_epoch = max(1, updates_per_epoch((exp / "train.log").read_text()))
    # later epochs may have a few batches fewer than epoch 1: a 5 % margin
    epochs = math.ceil(1.05 * args.updates / per_epoch)
    asrkit("train", *train_overrides(data, exp, f"trainer.max_epochs={epochs}"),
           timeout=budget.left())
    curve = loss_curve((exp / "train.log").read_text())
    first, last = curve[0][1], curve[-1][1]
    verdict = "falls: PASS" if loss_falls(curve) else "does NOT fall: FAIL"
    print(f"train: {curve[-1][0]} updates ({epochs} epochs of ~{per_epoch}), loss "
          f"{first:.2f} at update {curve[0][0]} -> {last:.2f}; loss {verdict}")
    return exp


def ddp_section(budget: Budget, data: Path, work_dir: Path) -> None:
    """``trainer.devices=2``: two DDP ranks on the one GPU (gloo, since NCCL takes one rank
    per GPU; asrkit.training.distributed.distributed_backend). ``trainer.devices=1`` is a
    single process that never touches torch.distributed, so it would check nothing of DDP;
    two ranks run its collectives, the sharded sampler and rank 0's writing for real."""
    exp = work_dir / "exp_ddp"
    shutil.rmtree(exp, ignore_errors=True)
    start = time.perf_counter()
    asrkit("train", *train_overrides(data, exp, "trainer.max_epochs=1", "trainer.devices=2"),
           timeout=budget.left())
    log = (exp / "train.log").read_text()
    processes = re.search(r"(\d+) process\(es\)", log)
    print(f"ddp: trainer.devices=2 (two ranks sharing the GPU) finished in "
          f"{time.perf_counter() - start:.0f} s, {updates_per_epoch(log)} updates per rank, "
          f"{processes.group(1) if processes else '?'} process(es); checkpoint written: "
          f"{any((exp / 'checkpoints').glob('epoch_1.pt'))}")


def decode_section(budget: Budget, exp: Path | None, data: Path | None) -> None:
    from asrkit.scoring.decode_dir import setting_value

    if exp is not None and data is not None:
        asrkit("average", str(exp), "--num", "1", "--allow-fewer", timeout=budget.left())
        methods = "[ctc_greedy,ctc_prefix_beam,attention,attention_rescoring,joint]"
        for precision in ("fp32", "bf16"):
            asrkit("decode", f"exp_dir={exp}", f"test_sets=[{data}/test.jsonl]",
                   f"methods={methods}", "checkpoint=avg_1.pt", "device=cuda",
                   f"precision={precision}", timeout=budget.left())
        for wer in sorted(exp.glob("decode/**/wer.json")):
            result = json.loads(wer.read_text())
            precision = setting_value(result.get("decode") or {}, "precision")
            print(f"decode: {result.get('method', wer.parent.name):<22} {precision:<5} RTF "
                  f"{result.get('rtf', float('nan')):.5f}  WER {result.get('wer', float('nan')):.2f}%")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/decode.py"), "--search-only",
                          "--device", "cuda", "--precision", "fp32", "bf16"],
                         capture_output=True, text=True, cwd=ROOT,
                         timeout=max(10.0, budget.left()), check=False)
    text = out.stdout if out.returncode == 0 else f"failed: {out.stderr.strip()[-300:]}"
    print("decode: batched search vs per-utterance reference (benchmarks/decode.py):\n" + text)


def section(name: str, budget: Budget, reserve: float, work) -> object:
    """Run one section; any failure becomes one line and the check goes on."""
    if budget.left() < reserve:
        print(f"{name}: skipped: {budget.left():.0f} s of the budget left")
        return None
    start = time.perf_counter()
    try:
        return work()
    except Exception as error:  # noqa: BLE001 (a section may fail in any way; report, go on)
        print(f"{name}: failed after {time.perf_counter() - start:.0f} s: "
              f"{type(error).__name__}: {str(error)[:300]}")
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(args.cell, args.steps)))
        return 0
    budget = Budget(args.budget_s)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; nothing to check")
        return 1
    name = torch.cuda.get_device_name(0)
    print(f"gpu_check: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, peak "
          f"{peak_tflops_for(name, args.peak_tflops) or '?'} TFLOP/s bf16, budget "
          f"{args.budget_s:.0f} s, sections {','.join(args.sections)}", flush=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = exp = None
    if "steps" in args.sections:
        share = budget.left() * steps_share(args.sections, corpus_possible(args))
        section("steps", budget, 30, lambda: steps_section(args, budget, share))
    if {"train", "ddp", "decode"} & set(args.sections):
        data = section("corpus", budget, 60, lambda: prepare_corpus(args, budget))
    if "train" in args.sections and data is not None:
        exp = section("train", budget, 60, lambda: train_section(args, budget, data))
    if "ddp" in args.sections and data is not None:
        section("ddp", budget, 30, lambda: ddp_section(budget, data, args.work_dir))
    if "decode" in args.sections:
        section("decode", budget, 20, lambda: decode_section(budget, exp, data))
    print(f"gpu_check: done, {args.budget_s - budget.left():.0f} s used", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
