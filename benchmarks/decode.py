"""Real-time factor of every decoding method on the CPU (or a GPU), for a preset model.

    .venv/bin/python benchmarks/decode.py                                  # synth/conformer, random weights
    .venv/bin/python benchmarks/decode.py --preset librispeech/conformer_s --num-utts 200
    .venv/bin/python benchmarks/decode.py --exp exp/conformer --checkpoint avg_10.pt \\
        --manifest data/synth/test.jsonl                                   # a trained model

Prints, per torch thread count, the RTF of features + encoder alone and of each method
(features + encoder + CTC head + that method's search, divided by the audio duration; see
asrkit.decoding.decode_set), best of --repeats runs, and the mean hypothesis length. A random-weight decoder seldom emits eos, so attention and
joint search would run to the encoder length; ``--max-len-ratio`` (default 0.35 with random
weights: about the bpe-100 tokens per encoder frame of the synth corpus) caps the output length
at a realistic value instead. With --exp the model's own lengths are used (ratio 1).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from asrkit.config import compose_train_config
from asrkit.data.features import FbankExtractor
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import run_preparer
from asrkit.decoding.decode_set import decode_utterances
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.methods import METHODS, DecodeOptions, resolve_methods
from asrkit.models.build import build_model
from asrkit.models.param_count import count_parameters
from asrkit.text.tokenizer import train_tokenizer


def random_model(preset: str, texts: list[str], vocab: int, device: str):
    tokenizer = train_tokenizer(texts, "bpe", vocab)
    config = compose_train_config([f"+experiment={preset}", f"vocab_size={tokenizer.vocab_size}"])
    torch.manual_seed(0)
    model = build_model(config).to(device).eval()
    data = config["data"]
    extractor = FbankExtractor(data["sample_rate"], data["features"]["num_mel_bins"],
                               data["features"]["frame_length"], data["features"]["frame_shift"])
    return model, tokenizer, extractor, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synth/conformer", help="+experiment= preset")
    parser.add_argument("--exp", type=Path, help="decode with this experiment's checkpoint")
    parser.add_argument("--checkpoint", default="avg_10.pt")
    parser.add_argument("--manifest", type=Path, help="test set (default: a synth test set)")
    parser.add_argument("--num-utts", type=int, default=200, help="size of the synth corpus")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--ctc-weight", type=float, default=0.3)
    parser.add_argument("--max-len-ratio", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="runs per thread count")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            run_preparer("synth", None, Path(tmp), num_utts=args.num_utts, seed=0)
            manifest = Path(tmp) / "test.jsonl"
        utterances = read_manifest(manifest)
        if args.exp is not None:
            exp = load_experiment(args.exp, args.checkpoint, args.device)
            model, tokenizer, extractor, cmvn = exp.model, exp.tokenizer, exp.extractor, exp.cmvn
            ratio = args.max_len_ratio or 1.0
            what = f"{exp.checkpoint}"
        else:
            train = read_manifest(manifest.parent / "train.jsonl")
            model, tokenizer, extractor, cmvn = random_model(
                args.preset, [u.text for u in train], 100, args.device)
            ratio = args.max_len_ratio or 0.35
            what = f"{args.preset} (random weights)"
        methods = resolve_methods(args.methods, model)
        options = DecodeOptions(beam=args.beam, ctc_weight=args.ctc_weight,
                                max_len_ratio=ratio)
        audio = sum(u.duration for u in utterances)
        params = count_parameters(model)["total"]
        print(f"model {what}: {params / 1e6:.2f}M parameters, vocabulary {tokenizer.vocab_size}")
        print(f"test set {manifest.name}: {len(utterances)} utterances, {audio:.1f} s of audio; "
              f"beam {args.beam}, ctc_weight {args.ctc_weight}, max_len_ratio {ratio}, "
              f"batch {args.batch_size}, device {args.device}")
        # warm-up (allocator, first-call overheads) on a few utterances
        decode_utterances(model, tokenizer, utterances[:4], extractor, methods, options, cmvn,
                          args.batch_size, device=args.device)
        table = {}
        for threads in args.threads:
            torch.set_num_threads(threads)
            runs = [decode_utterances(model, tokenizer, utterances, extractor, methods, options,
                                      cmvn, args.batch_size, device=args.device)
                    for _ in range(args.repeats)]
            table[threads] = {"features + encoder": min(r.shared_rtf for r in runs)}
            for method in methods:
                table[threads][method.name] = min(r.rtf[method.name] for r in runs)
            hyps = runs[0].hyps
        print(f"RTF, best of {args.repeats} (each method's includes features + encoder):")
        print(f"{'':<22}" + "".join(f"{f'{n} thread' + ('s' if n > 1 else ''):>12}"
                                    for n in args.threads) + "   mean hypothesis")
        for name in table[args.threads[0]]:
            length = ""
            if name in hyps:
                texts = list(hyps[name].values())
                length = f"{sum(len(t) for t in texts) / max(len(texts), 1):.0f} characters"
            print(f"{name:<22}" + "".join(f"{table[n][name]:>12.4f}" for n in args.threads)
                  + f"   {length}")

if __name__ == "__main__":
    main()
