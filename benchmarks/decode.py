"""Decoding speed, in two parts.

    .venv/bin/python benchmarks/decode.py --search-only              # part 1 only (seconds)
    .venv/bin/python benchmarks/decode.py --precision fp32 bf16      # both, side by side
    .venv/bin/python benchmarks/decode.py                            # parts 1 and 2
    .venv/bin/python benchmarks/decode.py --preset librispeech/conformer_s --num-utts 200
    .venv/bin/python benchmarks/decode.py --exp exp/conformer --checkpoint avg_10.pt \\
        --manifest data/synth/test.jsonl                             # a trained model too

1. **Batched search against a plain reference, on the same log-probabilities.** The CTC
   prefix beam search (asrkit.decoding.ctc_prefix_beam: every utterance and beam entry at
   once, a tensor step per frame) and attention rescoring (that search, then the decoder
   over each utterance's N-best as a prefix tree) against a per-utterance Python implementation
   written here: the prefix beam search of Hannun et al. 2014 (Alg. 1) with a dict of
   prefixes, the same extension rule (the ``beam`` most likely non-blank labels of each
   frame, from one torch ``topk`` per utterance) and the same merging, then one decoder
   pass per hypothesis. Both run on the log-probabilities of ``--search-utts`` utterances
   of 2-8 s: those of the preset's model with random weights (flat distributions, the
   hardest case for merging) and "peaky" ones shaped like a trained CTC model's (a label
   every ~3 frames, blank elsewhere, 0.35 labels per encoder frame). It prints each one's
   real-time factor (search time / audio duration, the best of ``--repeats`` runs after a
   warm-up, alike for both; the encoder is not included), the
   speed-up, and whether the two agree (the same best hypothesis, scores within 1e-3); and
   how many prefix-tree nodes the rescoring decodes for the N-best's tokens. With
   ``--precision fp32 bf16`` rescoring has a row per precision (the batched code and the
   reference under the same autocast, asrkit.decoding.precision). Those utterances are one
   batch of mixed lengths; with ``--exp`` (and ``--manifest``) a third set of rows uses a
   trained model's own log-probabilities and decoder on real speech, batched as ``asrkit
   decode`` batches a test set (``--batch-size`` utterances, longest first, so each batch
   holds similar lengths; the reference still goes one utterance at a time).
2. **Every decoding method end to end** (features + encoder + CTC head + search, as
   ``asrkit decode`` runs it; asrkit.decoding.decode_set), per torch thread count, for a
   preset with random weights on a synth test set, or a trained experiment (``--exp``). A
   random-weight decoder seldom emits eos, so attention and joint search would run to the
   encoder length; ``--max-len-ratio`` (default 0.35 with random weights: about the bpe-100
   tokens per encoder frame of the synth corpus) caps the output length instead. With
   several ``--precision`` values each gets a column per thread count, and the share of
   hypotheses each gives that are equal to the first's is printed.
"""

from __future__ import annotations

import argparse
import heapq
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from asrkit.decoding.precision import PRECISIONS, DecodePrecision

NEG_INF = float("-inf")


def _logaddexp(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    high, low = (a, b) if a > b else (b, a)
    return high + math.log1p(math.exp(low - high))


def reference_prefix_beam(log_probs: torch.Tensor, beam: int, blank: int = 0,
                          top_k: int | None = None) -> list[tuple[tuple[int, ...], float]]:
    """One utterance's (T, V) log-probabilities -> its N-best [(labels, log P)], best first,
    by the textbook dict-of-prefixes prefix beam search, one frame at a time."""
    k = max(1, min(top_k or beam, log_probs.size(1) - 1))
    masked = log_probs.float().index_fill(1, torch.tensor([blank]), NEG_INF)
    top_val, top_tok = masked.topk(k, dim=1)
    frames, cand_vals, cand_toks = log_probs.float().tolist(), top_val.tolist(), top_tok.tolist()
    hyps: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}  # prefix: pb, pnb
    for x, vals, toks in zip(frames, cand_vals, cand_toks, strict=True):
        grown: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [NEG_INF, NEG_INF])
        for prefix, (pb, pnb) in hyps.items():
            total = _logaddexp(pb, pnb)
            stay = grown[prefix]
            stay[0] = _logaddexp(stay[0], total + x[blank])
            if prefix:
                stay[1] = _logaddexp(stay[1], pnb + x[prefix[-1]])
            for value, token in zip(vals, toks, strict=True):
                extended = grown[(*prefix, token)]
                base = pb if prefix and prefix[-1] == token else total
                extended[1] = _logaddexp(extended[1], base + value)
        best = heapq.nlargest(beam, grown.items(), key=lambda kv: _logaddexp(*kv[1]))
        hyps = {prefix: (pb, pnb) for prefix, (pb, pnb) in best}
    ranked = [(prefix, _logaddexp(pb, pnb)) for prefix, (pb, pnb) in hyps.items()]
    return sorted(ranked, key=lambda item: -item[1])


def reference_rescoring(model, enc: torch.Tensor, enc_lens: torch.Tensor, log_probs: torch.Tensor,
                        beam: int, ctc_weight: float) -> list[list[tuple[tuple[int, ...], float]]]:
    """Per utterance: the reference prefix beam search, then each hypothesis scored by the
    decoder on its own; re-ranked by ctc_weight * ctc + (1 - ctc_weight) * attention."""
    results = []
    for b in range(enc.size(0)):
        length = int(enc_lens[b])
        ranked = []
        for labels, ctc_score in reference_prefix_beam(log_probs[b, :length], beam,
                                                       model.blank_id):
            att = float(model.score_hypotheses(enc[b: b + 1, :length], enc_lens[b: b + 1],
                                               [list(labels)])[0])
            ranked.append((labels, ctc_weight * ctc_score + (1.0 - ctc_weight) * att))
        results.append(sorted(ranked, key=lambda item: -item[1]))
    return results


def peaky_log_probs(lengths: torch.Tensor, vocab: int, blank: int = 0,
                    labels_per_frame: float = 0.35, seed: int = 0) -> torch.Tensor:
    """(B, T', V) log-probabilities shaped like a trained CTC model's: on a random
    ``labels_per_frame`` share of frames one label dominates, blank on the rest."""
    gen = torch.Generator().manual_seed(seed)
    batch, frames = lengths.numel(), int(lengths.max())
    logits = 1.5 * torch.randn(batch, frames, vocab, generator=gen)  # (B, T', V)
    label_frames = torch.rand(batch, frames, generator=gen) < labels_per_frame
    labels = torch.randint(blank + 1, vocab, (batch, frames), generator=gen)  # non-blank
    winner = torch.where(label_frames, labels, blank)  # (B, T')
    logits.scatter_add_(2, winner.unsqueeze(-1), torch.full((batch, frames, 1), 8.0))
    return torch.log_softmax(logits, dim=-1)


def preset_model(preset: str, vocab: int, device: str):
    from asrkit.config import compose_train_config
    from asrkit.models.build import build_model

    config = compose_train_config([f"+experiment={preset}", f"vocab_size={vocab}"])
    torch.manual_seed(0)
    return build_model(config).to(device).eval(), config


def search_inputs(model, utts: int, mel_bins: int, device: str, seed: int = 0):
    """Random fbank features of 2-8 s utterances through the model: (enc, enc_lens, the
    model's CTC log-probs, audio seconds)."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.randint(200, 801, (utts,), generator=gen)  # 10 ms frames
    feats = torch.randn(utts, int(frames.max()), mel_bins, generator=gen)
    with torch.inference_mode():
        enc, enc_lens = model.encode(feats.to(device), frames.to(device))
        log_probs = model.ctc_log_probs(enc)
    return enc, enc_lens, log_probs, float(frames.sum()) * 0.01


def best_time(fn, repeats: int, device: str):
    """(seconds of the fastest of ``repeats`` runs, the last result)."""
    times, out = [], None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times), out


def agreement(batched, reference) -> tuple[float, float]:
    """(share of utterances whose best labels agree, largest |score difference| among them)."""
    same, diff = 0, 0.0
    for ours, ref in zip(batched, reference, strict=True):
        if ours and ref and tuple(ours[0].tokens) == tuple(ref[0][0]):
            same += 1
            diff = max(diff, abs(ours[0].score - ref[0][1]))
    return same / max(len(reference), 1), diff


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # enc, enc_lens, CTC log-probs


def search_benchmark(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.search_threads)
    model, config = preset_model(args.preset, args.vocab_size, args.device)
    mel = config["encoder"].get("input_dim", 80)
    enc, enc_lens, model_lp, audio = search_inputs(model, args.search_utts, mel, args.device)
    peaky = peaky_log_probs(enc_lens.cpu(), model_lp.size(-1)).to(args.device)
    print(f"search on the same log-probs: {args.preset} (random weights), "
          f"{args.search_utts} utterances ({audio:.1f} s) in one batch, vocabulary "
          f"{model_lp.size(-1)}, beam {args.beam}, ctc_weight {args.ctc_weight}, "
          f"{args.search_threads} thread(s), device {args.device}; RTF = search time / audio "
          f"(encoder excluded)")
    print(f"{'log-probs':<14} {'method':<20} {'precision':<9} {'batched RTF':>12} "
          f"{'reference RTF':>14} {'speed-up':>9}  agreement (best hyp, max |score diff|)")
    for kind, log_probs in (("random model", model_lp), ("peaky", peaky)):
        compare_searches(kind, model, [(enc, enc_lens, log_probs)], audio, args)
        print(f"{'':<14} {'':<20} {nbest_sharing([(enc, enc_lens, log_probs)], model, args.beam)}")
    if args.exp is not None:
        experiment_rows(args)


def experiment_rows(args: argparse.Namespace) -> None:
    """The rows of a trained experiment (--exp) on --manifest, or why there are none."""
    if args.manifest is None:
        print(f"(no rows for {args.exp}: its lists need a test set, --manifest)")
        return
    model, batches, audio, what = experiment_batches(args)
    if not batches:
        print(f"(no rows for {args.exp}: no CTC head, or no utterance to search)")
        return
    print(f"{what}: {sum(b[0].size(0) for b in batches)} utterances ({audio:.1f} s) in "
          f"asrkit decode's batches ({len(batches)}: --batch-size {args.batch_size}, longest "
          f"first)")
    compare_searches("trained model", model, batches, audio, args)
    print(f"{'':<14} {'':<20} {nbest_sharing(batches, model, args.beam)}")


def experiment_batches(args: argparse.Namespace) -> tuple[object, list[Batch], float, str]:
    """A trained experiment's encoder and CTC head over ``--manifest`` (its first
    ``--exp-utts`` utterances; 0: all), batched as ``asrkit decode`` batches them
    (asrkit.decoding.decode_set.make_batches) -> (model, batches, audio, name). Utterances
    ``asrkit decode`` would give an empty hypothesis (unreadable audio, no encoder frame)
    are left out, and their audio is not counted. A model without a CTC head: no batches."""
    from asrkit.data.dataset import ASRDataset, collate_batch
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding.decode_set import encode_batch, make_batches
    from asrkit.decoding.experiment import load_experiment

    exp = load_experiment(args.exp, args.checkpoint, args.device)
    name = f"{args.exp} ({exp.checkpoint}), {args.manifest.name}"
    if getattr(exp.model, "ctc", None) is None:
        return exp.model, [], 0.0, name
    utterances = read_manifest(args.manifest)[: args.exp_utts or None]
    dataset = ASRDataset(utterances, [[] for _ in utterances], exp.extractor, cmvn=exp.cmvn)
    frames = [exp.extractor.frames_for_duration(u.duration) for u in utterances]
    duration = {u.id: u.duration for u in utterances}
    batches, audio, left_out = [], 0.0, 0
    with torch.inference_mode():
        for rows in make_batches(frames, args.batch_size, max_frames=30000):
            batch = collate_batch([dataset[i] for i in rows])
            left_out += len(batch["failed"])
            if not batch["ids"]:
                continue
            enc, enc_lens, log_probs, keep = encode_batch(
                exp.model, batch["feats"].to(args.device), batch["feat_lens"].to(args.device))
            kept = [uid for uid, k in zip(batch["ids"], keep.tolist(), strict=True) if k]
            left_out += len(batch["ids"]) - len(kept)
            if kept:
                batches.append((enc, enc_lens, log_probs))
                audio += sum(duration[uid] for uid in kept)
    if left_out:
        print(f"({left_out} utterance(s) of {args.manifest} left out: unreadable, or without "
              f"an encoder frame)")
    return exp.model, batches, audio, name


def compare_searches(kind: str, model, batches: list[Batch], audio: float,
                     args: argparse.Namespace) -> None:
    """One table row per method and precision: the batched search (a call per batch) and
    the reference (a call per utterance) on the batches' log-probs, both under that
    precision's autocast (the CTC searches have no network pass: one row, fp32).
    Rescoring needs an attention decoder: without one, its rows are left out."""
    methods = ["ctc_prefix_beam"] + (["attention_rescoring"] if model.decoder is not None
                                     else [])
    for method in methods:
        for name in args.precision if method == "attention_rescoring" else ["fp32"]:
            compare_one(kind, method, name, model, batches, audio, args)


def compare_one(kind: str, method: str, precision: str, model, batches: list[Batch],
                audio: float, args: argparse.Namespace) -> None:
    from asrkit.decoding.attention_rescoring import rescore_nbest
    from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search

    autocast = DecodePrecision.resolve(precision, args.device).autocast
    on_cpu = [(enc, enc_lens, log_probs.cpu()) for enc, enc_lens, log_probs in batches]

    def batched_ctc():
        return [hyps for _, enc_lens, log_probs in batches
                for hyps in ctc_prefix_beam_search(log_probs, enc_lens, args.beam,
                                                   model.blank_id)]

    def reference_ctc():
        return [reference_prefix_beam(lp[b, : int(enc_lens[b])], args.beam, model.blank_id)
                for _, enc_lens, lp in on_cpu for b in range(lp.size(0))]

    def batched_rescoring():
        with torch.inference_mode(), autocast():
            return [hyps for enc, enc_lens, log_probs in batches
                    for hyps in rescore_nbest(model, enc, enc_lens, ctc_prefix_beam_search(
                        log_probs, enc_lens, args.beam, model.blank_id), args.ctc_weight)]

    def reference_rescore():
        with torch.inference_mode(), autocast():
            return [ranked for enc, enc_lens, lp in on_cpu
                    for ranked in reference_rescoring(model, enc, enc_lens, lp, args.beam,
                                                      args.ctc_weight)]

    fast, slow = {"ctc_prefix_beam": (batched_ctc, reference_ctc),
                  "attention_rescoring": (batched_rescoring, reference_rescore)}[method]
    fast()  # warm-up, for both: a cold first bf16 run is ~1.3x slower (autocast's caches)
    slow()
    t_fast, ours = best_time(fast, args.repeats, args.device)
    t_slow, ref = best_time(slow, args.repeats, args.device)  # alike: best of each
    same, diff = agreement(ours, ref)
    print(f"{kind:<14} {method:<20} {precision:<9} {t_fast / audio:>12.5f} "
          f"{t_slow / audio:>14.5f} {t_slow / t_fast:>8.1f}x  {same:.0%}, {diff:.1e}", flush=True)


def nbest_sharing(batches: list[Batch], model, beam: int) -> str:
    """How much the N-best lists share: their tokens (sos included, what a decoder pass per
    hypothesis computes) against their prefix trees' nodes (what attention rescoring
    computes, asrkit.models.prefix_tree)."""
    from asrkit.decoding.ctc_prefix_beam import ctc_prefix_beam_search
    from asrkit.models.prefix_tree import PrefixTree

    nbest = [hyps for _, enc_lens, log_probs in batches
             for hyps in ctc_prefix_beam_search(log_probs, enc_lens, beam, model.blank_id)]
    tokens = sum(len(hyp.tokens) + 1 for hyps in nbest for hyp in hyps)
    nodes = sum(PrefixTree.build([hyp.tokens for hyp in hyps]).num_nodes
                for hyps in nbest if hyps)
    return (f"rescoring decodes {nodes:,} prefix-tree nodes for {tokens:,} hypothesis tokens "
            f"({tokens / max(nodes, 1):.1f}x fewer)")


def full_pipeline(args: argparse.Namespace) -> None:
    """Part 2: every method end to end (asrkit.decoding.decode_set), per thread count."""
    from asrkit.data.features import FbankExtractor
    from asrkit.data.manifest import read_manifest
    from asrkit.data.prepare import run_preparer
    from asrkit.decoding.decode_set import decode_utterances
    from asrkit.decoding.experiment import load_experiment
    from asrkit.decoding.plan import search_methods
    from asrkit.models.param_count import count_parameters
    from asrkit.text.registry import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            run_preparer("synth", None, Path(tmp), num_utts=args.num_utts, seed=0)
            manifest = Path(tmp) / "test.jsonl"
        utterances = read_manifest(manifest)
        if args.exp is not None:
            exp = load_experiment(args.exp, args.checkpoint, args.device)
            model, tokenizer, extractor, cmvn = exp.model, exp.tokenizer, exp.extractor, exp.cmvn
            ratio, what = args.max_len_ratio or 1.0, f"{exp.checkpoint}"
        else:
            train = read_manifest(manifest.parent / "train.jsonl")
            tokenizer = train_tokenizer([u.text for u in train], "bpe", 100)
            model, config = preset_model(args.preset, tokenizer.vocab_size, args.device)
            feat = config["data"]["features"]
            extractor = FbankExtractor(config["data"]["sample_rate"], feat["num_mel_bins"],
                                       feat["frame_length"], feat["frame_shift"])
            cmvn, ratio = None, args.max_len_ratio or 0.35
            what = f"{args.preset} (random weights)"
        overrides = [f"beam={args.beam}", f"ctc_weight={args.ctc_weight}"]
        overrides += [f"search.{m}.max_len_ratio={ratio}" for m in args.methods
                      if m in ("attention", "joint")]
        methods = search_methods(args.methods, overrides, model)
        audio = sum(u.duration for u in utterances)
        params = count_parameters(model)["total"]
        print(f"\nmodel {what}: {params / 1e6:.2f}M parameters, vocabulary {tokenizer.vocab_size}")
        print(f"test set {manifest.name}: {len(utterances)} utterances, {audio:.1f} s of audio; "
              f"beam {args.beam}, ctc_weight {args.ctc_weight}, max_len_ratio {ratio}, "
              f"batch {args.batch_size}, device {args.device}")
        precisions = {name: DecodePrecision.resolve(name, args.device)
                      for name in args.precision}
        for precision in precisions.values():  # warm-up
            decode_utterances(model, tokenizer, utterances[:4], extractor, methods, cmvn,
                              args.batch_size, device=args.device, precision=precision)
        table, hyps = {}, {}
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name, precision in precisions.items():
                runs = [decode_utterances(model, tokenizer, utterances, extractor, methods,
                                          cmvn, args.batch_size, device=args.device,
                                          precision=precision)
                        for _ in range(args.repeats)]
                column = table[(threads, name)] = {
                    "features + encoder": min(r.shared_rtf for r in runs)}
                for method in methods:
                    column[method] = min(r.rtf[method] for r in runs)
                hyps[name] = runs[0].hyps
    print(f"RTF, best of {args.repeats} (each method's includes features + encoder):")
    print(f"{'':<22}" + "".join(f"{f'{n} thread' + ('s' if n > 1 else '') + f' {p}':>16}"
                                for n, p in table) + "   mean hypothesis")
    for method in next(iter(table.values())):
        length = ""
        if method in methods:
            texts = list(hyps[args.precision[0]][method].values())
            length = f"{sum(len(t) for t in texts) / max(len(texts), 1):.0f} characters"
        print(f"{method:<22}" + "".join(f"{column[method]:>16.4f}" for column in table.values())
              + f"   {length}")
    if len(precisions) > 1:
        first = args.precision[0]
        for name in args.precision[1:]:
            same = {m: sum(hyps[name][m][u] == hyps[first][m][u] for u in hyps[first][m])
                    for m in methods}
            print(f"{name} hypotheses equal to {first}'s: " + ", ".join(
                f"{m} {same[m]}/{len(utterances)}" for m in methods))


METHODS = ["ctc_greedy", "ctc_prefix_beam", "attention", "attention_rescoring", "joint"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="synth/conformer", help="+experiment= preset")
    parser.add_argument("--exp", type=Path, help="a trained experiment: part 1 adds its "
                        "lists on --manifest, part 2 decodes with it")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--manifest", type=Path, help="test set (default: a synth test set)")
    parser.add_argument("--num-utts", type=int, default=200, help="size of the synth corpus")
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--beam", type=int, default=10)
    parser.add_argument("--ctc-weight", type=float, default=0.3)
    parser.add_argument("--max-len-ratio", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS,
                        help="decode under each (asrkit.decoding.precision), side by side")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (best)")
    parser.add_argument("--search-only", action="store_true", help="part 1 only")
    parser.add_argument("--no-search", action="store_true", help="part 2 only")
    parser.add_argument("--search-utts", type=int, default=32)
    parser.add_argument("--exp-utts", type=int, default=0,
                        help="part 1 with --exp: the first N utterances of --manifest (0: all)")
    parser.add_argument("--search-threads", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=100, help="part 1's output size")
    args = parser.parse_args()
    # what each asks for on this device (auto -> bf16 or fp32), each once
    args.precision = list(dict.fromkeys(DecodePrecision.resolve(name, args.device).name
                                        for name in args.precision))
    if not args.no_search:
        search_benchmark(args)
    if not args.search_only:
        full_pipeline(args)


if __name__ == "__main__":
    main()
