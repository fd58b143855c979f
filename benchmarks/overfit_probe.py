"""Can this encoder learn at all? Fit a CTC head on a few fixed training batches.

    .venv/bin/python benchmarks/overfit_probe.py --preset synth/contextnet_transducer
    .venv/bin/python benchmarks/overfit_probe.py --preset synth/contextnet_transducer -- \\
        encoder.residual=projection encoder.alpha=0.3        # the paper's shortcuts
    .venv/bin/python benchmarks/overfit_probe.py --preset synth/conformer

The preset's encoder (with any Hydra overrides after ``--``) gets a fresh linear CTC head
and is trained on the first ``--batches`` batches of ``--manifest`` (in the loader's fixed
order, no augmentation), round-robin, with Adam (``--lr``, linear warm-up over
``--warmup`` updates, gradient clipping at 5). It prints the mean CTC loss per utterance
every 25 updates. An encoder that can be trained drives it towards zero within a few
hundred updates (synth/conformer: 1.7 after 200, the synth ContextNet with identity
shortcuts 0.5); one that cannot stays near the loss of emitting blanks and the commonest
tokens (about 40 on the synth corpus). This is
how the synth ContextNet's problem was found (recipes/synth/RESULTS.md): a quick check,
minutes instead of a training run, of an encoder's optimisation alone, apart from the
decoder side, the data's size and the schedule.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="synth/conformer")
    parser.add_argument("--manifest", default="data/synth/train.jsonl")
    parser.add_argument("--tokenizer", default="data/synth/bpe100")
    parser.add_argument("--cmvn", default="data/synth/cmvn.json")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (after --)")
    args = parser.parse_args()

    from asrkit.config import compose_train_config
    from asrkit.data.loader import build_loader
    from asrkit.models.build import build_model
    from asrkit.models.ctc import CTC
    from asrkit.text.registry import load_tokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = load_tokenizer(args.tokenizer)
    config = compose_train_config([f"+experiment={args.preset}",
                                   f"vocab_size={tokenizer.vocab_size}", *args.overrides])
    encoder = build_model(config).encoder.train()  # the rest of the model is not used
    data = dict(config["data"], cmvn=args.cmvn, num_workers=0)
    # as in training: utterances with more tokens than encoder frames are left out
    loader = build_loader(args.manifest, tokenizer, data, train=False,
                          output_lengths=encoder.output_lengths)
    batches = list(itertools.islice(iter(loader), args.batches))
    head = CTC(encoder.output_dim, tokenizer.vocab_size)
    params = [*encoder.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / args.warmup))
    utterances = sum(b["feats"].size(0) for b in batches)
    print(f"{args.preset} {' '.join(args.overrides)}: encoder "
          f"{sum(p.numel() for p in encoder.parameters()):,} parameters; {len(batches)} "
          f"batches, {utterances} utterances; lr {args.lr}, {args.precision}", flush=True)
    start, total = time.perf_counter(), 0.0
    for update in range(1, args.updates + 1):
        batch = batches[(update - 1) % len(batches)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            enc, enc_lens = encoder(batch["feats"], batch["feat_lens"])
        loss = head(enc.float(), enc_lens, batch["tokens"], batch["token_lens"])
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimiser.step()
        schedule.step()
        total += loss.item()
        if update % 25 == 0:
            print(f"update {update:>5}  CTC loss {total / 25:8.2f}  "
                  f"{time.perf_counter() - start:6.0f} s", flush=True)
            total = 0.0


if __name__ == "__main__":
    main()
