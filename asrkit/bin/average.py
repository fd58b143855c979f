"""Average the weights of the last or best N epoch checkpoints of an experiment.

    asrkit average exp/conformer --num 10                  # last 10 -> exp/conformer/avg_10.pt
    asrkit average exp/conformer --num 5 --best-by dev_wer # best 5 -> avg_best_dev_wer_5.pt
    asrkit average exp/conformer --num 5 --best-by dev_loss --out exp/conformer/best5.pt

The output is a checkpoint like the others (decoding loads it with load_model) and records
which checkpoints went in (`averaged_from`); it becomes the experiment's averaged model,
which `asrkit decode` and `asrkit transcribe` use by default. Ties in --best-by go to the
newer epoch. Asking for more checkpoints than exp_dir/checkpoints holds is an error (exit 2)
naming how many there are; with --allow-fewer (the recipes' choice, for runs shorter than
--num epochs) all there are are averaged, into avg_<how many>.pt. An epoch checkpoint that is
unreadable or differs from its recorded content hash (checkpoints/epoch_N.pt.sha256) is an
error naming it, unless --skip-corrupt.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asrkit.config import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit average", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path, help="experiment directory (holds checkpoints/)")
    parser.add_argument("--num", type=int, default=10, help="checkpoints to average (10)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--best-by", metavar="METRIC",
                     help="pick the best by this dev metric: dev_loss, dev_wer, dev_cer, dev_acc")
    how.add_argument("--last", action="store_true", help="pick the newest (the default)")
    parser.add_argument("--out", type=Path, help="output file (default EXP_DIR/avg_NUM.pt, "
                                                 "or EXP_DIR/avg_best_METRIC_NUM.pt with "
                                                 "--best-by)")
    parser.add_argument("--allow-fewer", action="store_true",
                        help="average all there are when fewer than --num exist")
    parser.add_argument("--skip-corrupt", action="store_true",
                        help="leave out (with a warning) epoch checkpoints that are unreadable "
                             "or differ from their recorded hash, instead of refusing")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from asrkit.atomic_text import os_error_status
    from asrkit.checkpoint_io import CorruptCheckpointError
    from asrkit.training.average import average_experiment

    try:
        path, names = average_experiment(args.exp_dir, args.num, args.best_by, args.out,
                                         args.allow_fewer, args.skip_corrupt)
    except CorruptCheckpointError as e:  # a runtime failure: the files, not the command
        print(f"asrkit average: {one_line(e)}", file=sys.stderr)
        return 1
    except ValueError as e:  # bad options
        print(f"asrkit average: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing directory, an --out that cannot be used (2); full (1)
        print(f"asrkit average: {one_line(e)}", file=sys.stderr)
        return os_error_status(e)
    print(f"averaged {len(names)} checkpoint(s) ({args.best_by or 'last'}): "
          f"{', '.join(names)} -> {path}")
    if Path(path).resolve().parent != Path(args.exp_dir).resolve():
        print(f"asrkit average: {path} lies outside {args.exp_dir}, so it is not the "
              "experiment's model (averaged.json is unchanged; decode it with "
              "checkpoint=<path>)", file=sys.stderr)
    return 0
