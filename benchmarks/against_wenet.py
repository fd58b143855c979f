"""asrkit's AISHELL-1 Conformer training step against WeNet's own (Yao et al. 2021), timed
side by side in one process.

    .venv/bin/python benchmarks/against_wenet.py --wenet-src ~/src/wenet            # fp32
    .venv/bin/python benchmarks/against_wenet.py --wenet-src ~/src/wenet --precision bf16
    .venv/bin/python benchmarks/against_wenet.py --wenet-src ~/src/wenet --pairs 40 \\
        --asrkit-overrides encoder.dropout=0.0

``--wenet-src``: a WeNet checkout (github.com/wenet-e2e/wenet), the directory that holds
``wenet/`` and ``examples/``. WeNet's model is built by its own ``init_model`` from its
``examples/aishell/s0/conf/train_conformer.yaml`` (12 Conformer blocks of 256, 6 decoder
blocks, CTC weight 0.3, label smoothing 0.1; 46,197,266 parameters at V = 4233, as
asrkit's ``aishell/conformer`` preset at that vocabulary). Nothing of WeNet is copied here
or changed there; three things let it import beside asrkit without WeNet's command-line
requirements, in this process only: its package ``__init__`` (which imports librosa for
the CLI) is not run, an absent ``whisper`` package is stood in for by an empty language
table, and names that WeNet's squeezeformer imports from ``torch.nn.modules.conv`` (gone in
recent torch) are put back there. Global CMVN is left out of both models: asrkit applies it
in the data loader, outside the step.

The step, the same for both: forward with the joint CTC/attention loss, backward, gradient
norm clipped at 5, Adam (lr 0.002), on one fixed random batch of 8 utterances of 600, 580,
..., 460 fbank frames (80 bins) with 25 tokens each, and with ``--precision bf16`` both
forwards under bf16 autocast. The two models alternate step by step (WeNet first in even
pairs, asrkit first in odd ones) after ``--warmup`` steps each, so that a shared machine's
drift hits both alike. Freed host memory is kept for reuse as the trainer keeps it
(asrkit.training.host_memory; ``--malloc default`` leaves glibc's defaults), which speeds up
both models' steps. Prints one line per pair and the median of the per-pair ratios WeNet
ms / asrkit ms (above 1: asrkit is faster) with its quartiles.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path

import torch

VOCAB = 4233             # AISHELL-1's characters with the special units
MEL_BINS = 80
LENGTHS = tuple(range(600, 459, -20))  # fbank frames of the batch's 8 utterances
TOKENS = 25
WENET_CONFIG = Path("examples/aishell/s0/conf/train_conformer.yaml")


def import_wenet(src: Path) -> Callable:
    """WeNet's ``init_model`` from the checkout ``src`` (module docstring: the three
    stand-ins); a directory without WeNet is a one-line error."""
    package = src / "wenet"
    if not (package / "utils" / "init_model.py").is_file():
        raise SystemExit(f"--wenet-src {src}: no WeNet checkout there "
                         f"({package / 'utils' / 'init_model.py'} not found)")
    bare = types.ModuleType("wenet")
    bare.__path__ = [str(package)]
    sys.modules["wenet"] = bare
    try:
        importlib.import_module("whisper.tokenizer")
    except ImportError:
        whisper, tokenizer = types.ModuleType("whisper"), types.ModuleType("whisper.tokenizer")
        tokenizer.LANGUAGES = {}
        whisper.tokenizer = tokenizer
        sys.modules.update({"whisper": whisper, "whisper.tokenizer": tokenizer})
    conv = importlib.import_module("torch.nn.modules.conv")
    for name, value in (("Union", typing.Union), ("Optional", typing.Optional),
                        ("Tensor", torch.Tensor)):
        if not hasattr(conv, name):
            setattr(conv, name, value)
    return importlib.import_module("wenet.utils.init_model").init_model


def wenet_model(src: Path) -> torch.nn.Module:
    import yaml

    init_model = import_wenet(src)
    if not (src / WENET_CONFIG).is_file():
        raise SystemExit(f"--wenet-src {src}: {src / WENET_CONFIG} not found (WeNet's AISHELL "
                         f"Conformer recipe config)")
    config = yaml.safe_load((src / WENET_CONFIG).read_text(encoding="utf-8"))
    config.update(input_dim=MEL_BINS, output_dim=VOCAB, vocab_size=VOCAB, cmvn=None)
    torch.manual_seed(0)
    model, _ = init_model(argparse.Namespace(), config)
    return model.train()


def asrkit_model(overrides: list[str]) -> torch.nn.Module:
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model

    config = compose_train_config(["+experiment=aishell/conformer", f"vocab_size={VOCAB}",
                                   *overrides])
    torch.manual_seed(0)
    return build_model(config).train()


def make_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    """feats (8, 600, 80) zero-padded, feat_lens (8,), tokens (8, 25) of 3..VOCAB-1,
    token_lens (8,)."""
    generator = torch.Generator().manual_seed(seed)
    lens = torch.tensor(LENGTHS)
    feats = torch.randn(len(LENGTHS), max(LENGTHS), MEL_BINS, generator=generator)
    feats *= (torch.arange(max(LENGTHS)) < lens[:, None]).unsqueeze(-1)
    tokens = torch.randint(3, VOCAB, (len(LENGTHS), TOKENS), generator=generator)
    return {"feats": feats, "feat_lens": lens, "tokens": tokens,
            "token_lens": torch.full((len(LENGTHS),), TOKENS)}


def timed_step(model: torch.nn.Module, loss_of: Callable[[], torch.Tensor],
               bf16: bool) -> Callable[[], float]:
    """A step of ``model`` (module docstring) that returns its milliseconds."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)

    def step() -> float:
        start = time.perf_counter()
        with (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
              else contextlib.nullcontext()):
            loss = loss_of()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - start) * 1e3

    return step


def alternate(wenet_step: Callable[[], float], asrkit_step: Callable[[], float], pairs: int,
              warmup: int) -> tuple[list[float], list[float]]:
    """``warmup`` steps of each, then ``pairs`` pairs, WeNet first in even pairs and asrkit
    first in odd ones: (WeNet ms, asrkit ms) per pair."""
    for _ in range(warmup):
        wenet_step()
        asrkit_step()
    wenet_ms, asrkit_ms = [], []
    for pair in range(pairs):
        if pair % 2 == 0:
            wenet_ms.append(wenet_step())
            asrkit_ms.append(asrkit_step())
        else:
            asrkit_ms.append(asrkit_step())
            wenet_ms.append(wenet_step())
    return wenet_ms, asrkit_ms


def summary(wenet_ms: list[float], asrkit_ms: list[float]) -> dict[str, float]:
    """The median and quartiles of the per-pair ratios WeNet / asrkit, and each side's
    median milliseconds."""
    ratios = [w / a for w, a in zip(wenet_ms, asrkit_ms, strict=True)]
    low, _, high = (statistics.quantiles(ratios, n=4) if len(ratios) > 1
                    else (ratios[0],) * 3)
    return {"ratio": statistics.median(ratios), "low": low, "high": high,
            "wenet_ms": statistics.median(wenet_ms), "asrkit_ms": statistics.median(asrkit_ms)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wenet-src", type=Path, required=True,
                        help="a WeNet checkout (holds wenet/ and examples/)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="both forwards in fp32, or both under bf16 autocast")
    parser.add_argument("--pairs", type=int, default=16, help="timed pairs (default 16)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--malloc", choices=["keep", "default"], default="keep",
                        help="keep freed host memory as the trainer does (default), or "
                             "glibc's defaults")
    parser.add_argument("--asrkit-overrides", nargs="*", default=[],
                        help="Hydra overrides of asrkit's aishell/conformer preset")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.pairs < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("--pairs and --threads must be at least 1, --warmup at least 0")
    torch.set_num_threads(args.threads)
    if args.malloc == "keep":
        from asrkit.training.host_memory import keep_freed_memory

        keep_freed_memory()
    wenet, asrkit = wenet_model(args.wenet_src), asrkit_model(args.asrkit_overrides)
    sizes = [sum(p.numel() for p in m.parameters()) for m in (wenet, asrkit)]
    batch = make_batch()
    wenet_batch = {  # as WeNet's data collation makes it: int32 lengths, a language
        # and a task per utterance
        "feats": batch["feats"], "feats_lengths": batch["feat_lens"].int(),
        "target": batch["tokens"], "target_lengths": batch["token_lens"].int(),
        "langs": ["zh"] * len(LENGTHS), "tasks": ["transcribe"] * len(LENGTHS)}
    bf16 = args.precision == "bf16"
    wenet_step = timed_step(wenet, lambda: wenet(wenet_batch, torch.device("cpu"))["loss"],
                            bf16)
    asrkit_step = timed_step(asrkit, lambda: asrkit(batch["feats"], batch["feat_lens"],
                                                    batch["tokens"], batch["token_lens"])["loss"],
                             bf16)
    print(f"WeNet {sizes[0]:,} parameters, asrkit {sizes[1]:,}; batch {len(LENGTHS)} x "
          f"{max(LENGTHS)}..{min(LENGTHS)} frames, {TOKENS} tokens, V={VOCAB}; "
          f"{args.precision}, {args.threads} thread(s), malloc {args.malloc}", flush=True)
    wenet_ms, asrkit_ms = alternate(wenet_step, asrkit_step, args.pairs, args.warmup)
    for pair, (w, a) in enumerate(zip(wenet_ms, asrkit_ms)):
        print(f"pair {pair + 1:>3}: WeNet {w:8.0f} ms  asrkit {a:8.0f} ms  {w / a:.3f}")
    result = summary(wenet_ms, asrkit_ms)
    print(f"WeNet / asrkit: {result['ratio']:.3f}x (quartiles {result['low']:.3f}-"
          f"{result['high']:.3f}; medians WeNet {result['wenet_ms']:.0f} ms, asrkit "
          f"{result['asrkit_ms']:.0f} ms, {args.pairs} pairs)")


if __name__ == "__main__":
    main()
