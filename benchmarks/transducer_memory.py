"""Peak memory of one transducer training step (forward + backward) on the CPU, with and
without the joint's memory bound (``max_joint_elements``, asrkit.models.transducer.loss).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/transducer_memory.py
    .venv/bin/python benchmarks/transducer_memory.py --vocab-sizes 256 1024 --budget 33554432
    .venv/bin/python benchmarks/transducer_memory.py --utts 8 --frames 1000 --tokens 60

The encoder is the ``librispeech/conformer_m`` preset's (16 Conformer blocks, d 256, conv2d
4x); the head is a 1-layer LSTM prediction network of 640 cells and a joiner of dimension
640 (the Conformer-M transducer of Gulati et al. 2020). The batch: ``--utts`` utterances of
``--frames`` 80-bin fbank frames (8 x 1000 = 10 s each) with ``--tokens`` labels each.
Each configuration runs in a fresh subprocess, so that its peak resident memory (the RSS
high-water mark, ``resource.getrusage``) is its own: the encoder alone (a stand-in loss on
its output), then the encoder + transducer at each vocabulary size without and with the
budget. The table gives the peak RSS, its rise during the step (over the RSS after
building the model and the batch), the size of one (B, T', U + 1, V) fp32 logits tensor and
the step time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

GIB = 2**30


def conformer_m_encoder(vocab_size: int) -> torch.nn.Module:
    """The librispeech/conformer_m encoder (the only use of asrkit's config and builder)."""
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model

    config = compose_train_config(["+experiment=librispeech/conformer_m",
                                   f"vocab_size={vocab_size}"])
    return build_model(config).encoder


def transducer_head(encoder_dim: int, vocab_size: int, budget: int | None) -> torch.nn.Module:
    from asrkit.models.transducer.head import TransducerHead
    from asrkit.models.transducer.joiner import Joiner
    from asrkit.models.transducer.lstm_prediction import LSTMPredictionNetwork

    return TransducerHead(LSTMPredictionNetwork(vocab_size, 640, num_layers=1),
                          Joiner(encoder_dim, 640, vocab_size, joint_dim=640),
                          max_joint_elements=budget)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def measure(vocab_size: int, budget: int | None, head: bool, args: argparse.Namespace) -> dict:
    """One configuration in this process: the figures as a dict."""
    torch.manual_seed(0)
    encoder = conformer_m_encoder(vocab_size).train()
    model = transducer_head(encoder.output_dim, vocab_size, budget).train() if head else None
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(args.utts, args.frames, 80, generator=gen)  # (B, T, 80)
    feat_lens = torch.full((args.utts,), args.frames)
    tokens = torch.randint(3, vocab_size, (args.utts, args.tokens), generator=gen)  # (B, U)
    token_lens = torch.full((args.utts,), args.tokens)
    before = peak_rss_gib()
    start = time.perf_counter()
    enc, enc_lens = encoder(feats, feat_lens)  # (B, T', 256)
    if model is None:
        loss = enc.pow(2).mean()
    else:
        loss = model(enc, enc_lens, tokens, token_lens)["loss_transducer"]
    loss.backward()
    seconds = time.perf_counter() - start
    frames_out = enc.size(1)
    return {"vocab": vocab_size, "budget": budget, "head": head,
            "shape": f"B {args.utts} x T' {frames_out} x (U+1) {args.tokens + 1}",
            "logits_gib": args.utts * frames_out * (args.tokens + 1) * vocab_size * 4 / GIB,
            "peak_gib": peak_rss_gib(), "rise_gib": peak_rss_gib() - before,
            "seconds": seconds, "loss": float(loss), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--budget", type=int, default=2**25,
                        help="max_joint_elements of the bounded runs")
    parser.add_argument("--utts", type=int, default=8)
    parser.add_argument("--frames", type=int, default=1000, help="fbank frames per utterance")
    parser.add_argument("--tokens", type=int, default=60, help="labels per utterance")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "vocab,budget,head"
    args = parser.parse_args()
    if args.one:
        vocab, budget, head = args.one.split(",")
        print(json.dumps(measure(int(vocab), None if budget == "none" else int(budget),
                                 head == "1", args)))
        return
    runs = [(args.vocab_sizes[0], "none", "0")]
    runs += [(v, b, "1") for v in args.vocab_sizes for b in ("none", str(args.budget))]
    rows = []
    passthrough = [a for a in sys.argv[1:]]
    for vocab, budget, head in runs:
        out = subprocess.run([sys.executable, __file__, *passthrough,
                              "--one", f"{vocab},{budget},{head}"],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"V={vocab} budget={budget}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print(f"librispeech/conformer_m encoder, batch {rows[0]['shape']}, fp32, "
          f"{rows[0]['threads']} threads")
    print(f"{'configuration':<48} {'logits':>9} {'peak RSS':>9} {'step rise':>10} {'s/step':>7}")
    for r in rows:
        if not r["head"]:
            name, logits = "encoder alone", "-"
        else:
            bound = "all at once" if r["budget"] is None else f"max_joint_elements={r['budget']}"
            name, logits = f"+ transducer V={r['vocab']}, {bound}", f"{r['logits_gib']:.2f} GiB"
        print(f"{name:<48} {logits:>9} {r['peak_gib']:>5.2f} GiB {r['rise_gib']:>6.2f} GiB "
              f"{r['seconds']:>7.1f}")


if __name__ == "__main__":
    main()
