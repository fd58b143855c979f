"""Export an experiment's model to ONNX or TorchScript: a self-contained directory that transcribe runs.

    asrkit export exp/conformer --format onnx --out exported/conformer
    asrkit export exp/conformer --format torchscript --out exported/conformer_ts --checkpoint avg_3.pt
    asrkit transcribe exported/conformer talk.wav

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
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from asrkit.inference.export import ExportError, export_model

    torch.set_num_threads(min(torch.get_num_threads(), 2))
    try:
        report = export_model(args.exp_dir, args.out, args.format, args.checkpoint,
                              args.trust_module)
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
