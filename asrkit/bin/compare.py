"""Compare experiments: WER per test set and method, model size, training cost, significance.

    asrkit compare exp/transformer exp/conformer
    asrkit compare exp/* --sets test test_unseen --methods ctc_greedy attention_rescoring
    asrkit compare exp/a exp/b --format csv --pairs-csv pairs.csv > results.csv
    asrkit compare exp/a exp/b --plot wer.png --metric cer

Reads every `<exp>/decode/<checkpoint>/<set>/<method...>/wer.json` (written by `asrkit
decode`) and prints one table: a row per experiment and method (one per checkpoint and search
settings when an experiment was decoded more than once; the label says which), a column per
test set, with the parameter count, epochs and training hours of the decoded checkpoint.
For every two rows scored on the same set with the same method it gives the difference with
a 95 % confidence interval from paired bootstrap resampling over utterances (Bisani & Ney
2004) and whether it is significant; a note warns when the two were decoded with other
search settings (beam, ctc_weight, ...). --checkpoint NAME keeps one checkpoint's results.

--format csv prints one table only, so that stdout stays a single CSV file: a line per
experiment × row × set (with the checkpoint and the settings as JSON). The pairwise
differences and confidence intervals are NOT in it; write them with --pairs-csv FILE (a
second CSV: set, method, a, b, metric, value_a, value_b, delta, ci_low, ci_high,
prob_b_better, significant, utts); without it a note on stderr says how many pairs were
left out. --plot draws a missing result as "n/a", not as a 0 % bar.
Exit status 2 on bad input; a stored model config naming code outside asrkit is refused
(--trust-module MODULE allows a module of your own).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrkit.atomic_text import os_error_status, write_text_atomic
from asrkit.config import one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dirs", nargs="+", type=Path, help="experiment directories")
    parser.add_argument("--sets", nargs="+", help="only these test sets (manifest stems)")
    parser.add_argument("--methods", nargs="+", help="only these decoding methods")
    parser.add_argument("--checkpoint", help="only results of this checkpoint (as recorded, "
                                             "e.g. avg_3.pt, or its stem)")
    parser.add_argument("--metric", choices=("wer", "cer"), default="wer")
    parser.add_argument("--format", choices=("md", "csv"), default="md",
                        help="md: results and pairwise tables; csv: the results only, one "
                             "row per experiment x set x method (pairs: --pairs-csv)")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="also draw the metric per set and method (missing: n/a)")
    parser.add_argument("--pairs-csv", type=Path, metavar="FILE",
                        help="write the pairwise differences with their bootstrap "
                             "confidence intervals as CSV (the only place --format csv "
                             "puts them)")
    parser.add_argument("--trust-module", action="append", default=[], metavar="MODULE",
                        help="a module of your own that the experiments' stored configs may "
                             "name (repeatable); other non-asrkit targets are refused")
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrkit.scoring.compare import check_outputs, compare_experiments, normalisation_warning
    from asrkit.scoring.compare_format import (
        format_csv,
        format_markdown,
        format_pairs_csv,
        note_lines,
        plot,
    )

    try:
        if args.bootstrap_samples < 1:
            raise ValueError(f"--bootstrap-samples must be >= 1, got {args.bootstrap_samples}")
        comparison = compare_experiments(args.exp_dirs, args.sets, args.methods, args.metric,
                                         args.bootstrap_samples, args.seed, args.checkpoint,
                                         args.trust_module)
        check_outputs(comparison, {"--pairs-csv": args.pairs_csv, "--plot": args.plot})
        if args.format == "csv":
            print(format_csv(comparison), end="")
            warning = normalisation_warning(comparison)
            for line in [*([warning] if warning else []), *note_lines(comparison)]:
                print(line, file=sys.stderr)
        else:
            print(format_markdown(comparison), end="")
        if args.pairs_csv:
            write_text_atomic(args.pairs_csv, format_pairs_csv(comparison))
        elif args.format == "csv" and comparison.pairs:
            print(f"asrkit compare: {len(comparison.pairs)} pairwise difference(s) with "
                  "confidence intervals are not in the CSV; write them with --pairs-csv FILE",
                  file=sys.stderr)
        if args.plot:
            path = plot(comparison, args.plot)
            print(f"plot: {path}", file=sys.stderr)
    except ValueError as e:
        print(f"asrkit compare: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that cannot be used (2), a full disk (1)
        print(f"asrkit compare: {one_line(e)}", file=sys.stderr)
        return os_error_status(e)
    return 0
