"""Export an experiment's model to ONNX or TorchScript: a self-contained directory that transcribe runs.

    asrkit export exp/conformer --format onnx --out exported/conformer
    asrkit export exp/conformer --format torchscript --out exported/conformer_ts --checkpoint avg_3.pt
    asrkit transcribe exported/conformer talk.wav
    asrkit export exp/streaming --out exported/streaming --streaming --chunk-size 16 --left-chunks 4

Writes DIR/model.json (model family, graphs with their inputs and outputs, token ids,
feature settings, encoder frame timing, the training config), the graphs (encoder.onnx:
feats, feat_lens -> enc, enc_lens; ctc.onnx: enc -> log-probabilities; decoder.onnx: the
attention decoder for rescoring; for a transducer encoder_projection.onnx, prediction.onnx
(one prediction-network step: tokens and state in, output and state out) and joiner.onnx
(projected frame and prediction output -> log-probabilities); each where the model has
that branch; .pt for TorchScript), the tokenizer and the CMVN statistics. Every graph has
dynamic batch and time axes. The export is checked against the eager model on a batch of
four lengths: CTC log-probabilities, decoder scores and the transducer's projections,
prediction outputs and joint log-probabilities must agree within 1e-4, or no model.json is
written and the command fails. ONNX graphs run with onnxruntime (the `export` extra),
without asrkit building a model from the config; every search method runs on them.

--streaming (a model that streams: encoder.causal: true on the Conformers) also writes
encoder_chunk.onnx, the streaming encoder step at --chunk-size encoder frames (16) with
--left-chunks chunks of left context (-1: all): chunk_feats (batch, window, mel), offset,
att_cache (layers, batch, heads, cache_frames, 2*d_head) and, for encoders with a
convolution module, cnn_cache (layers, batch, kernel-1, d) in; enc, next_att_cache,
next_cnn_cache out (asrkit/inference/encoder_chunk_graph.py), the cache length a dynamic
axis. model.json's "streaming" records the chunk settings (window and stride in feature
frames) and the cache layout; the check runs five chunks through it beside the eager
encoder's forward_chunk, feeding the caches back.

Exit status: 0 exported, 1 the export failed or disagrees with the model, 2 usage error
(a missing experiment or checkpoint, an --out that holds something else).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrkit.config import ConfigError, one_line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asrkit export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_dir", type=Path, help="experiment directory")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", type=Path, required=True, help="directory to write")
    p.add_argument("--checkpoint", help="default: the averaged model, else checkpoints/last.pt")
    p.add_argument("--trust-module", action="append", default=[], metavar="MODULE",
                   help="a module of your own that the stored config may name")
    p.add_argument("--streaming", action="store_true",
                   help="also export the streaming encoder step (encoder_chunk)")
    p.add_argument("--chunk-size", type=int,
                   help="--streaming: encoder frames per chunk (default 16)")
    p.add_argument("--left-chunks", type=int,
                   help="--streaming: chunks of left context (default -1: all)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from asrkit.inference.export import ExportError, export_model

    if not args.streaming:
        given = [flag for flag, value in (("--chunk-size", args.chunk_size),
                                          ("--left-chunks", args.left_chunks))
                 if value is not None]
        if given:
            print(f"asrkit export: {given[0]}: only with --streaming", file=sys.stderr)
            return 2
    from asrkit.inference.streaming import DEFAULT_CHUNK_SIZE

    chunk = None if not args.streaming else (
        DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size)
    left = {} if args.left_chunks is None else {"left_chunks": args.left_chunks}
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    try:
        report = export_model(args.exp_dir, args.out, args.format, args.checkpoint,
                              args.trust_module, chunk_size=chunk, **left)
    except (ConfigError, FileNotFoundError, FileExistsError) as e:
        print(f"asrkit export: {one_line(e)}", file=sys.stderr)
        return 2
    except (ExportError, OSError, ValueError, RuntimeError) as e:
        print(f"asrkit export: {one_line(e)}", file=sys.stderr)
        return 1
    diffs = ", ".join(f"{name} {value:.1e}" for name, value in report.max_abs_diff.items())
    print(f"exported {args.exp_dir} ({report.family}) to {report.out_dir} as {report.runtime}: "
          f"{report.size_bytes / 1e6:.1f} MB; max |exported - eager|: {diffs}")
    return 0
