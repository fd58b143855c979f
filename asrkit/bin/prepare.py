"""Prepare a corpus into JSONL manifests (synth, librispeech, aishell, kaldi).

    asrkit prepare synth --out data/synth --num-utts 200
    asrkit prepare librispeech --src /corpora/LibriSpeech --out data/librispeech
    asrkit prepare aishell --src /corpora/aishell --out data/aishell
    asrkit prepare kaldi --src data/kaldi/train --out data/mycorpus
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrkit.atomic_text import os_error_status
from asrkit.cli_checks import out_dir_problem
from asrkit.config import one_line
from asrkit.data.prepare import PREPARERS, PreparedThenInterrupted, load_preparer, run_preparer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="corpus")
    for corpus in PREPARERS:
        module = load_preparer(corpus)
        p = sub.add_parser(corpus, help=(module.__doc__ or "").strip().split("\n")[0])
        p.add_argument("--src", type=Path, default=None, help="the corpus on disk")
        p.add_argument("--out", type=Path, required=True, help="directory for the manifests")
        p.add_argument("--strict", action="store_true", help="exit non-zero if anything is skipped")
        module.add_arguments(p)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("corpus", "src", "out", "strict")}
    if (problem := out_dir_problem(args.out)) is not None:
        print(f"asrkit prepare {args.corpus}: --out {problem}", file=sys.stderr)
        return 2
    try:
        summary = run_preparer(args.corpus, args.src, args.out, **options)
    except PreparedThenInterrupted as e:
        print(e.summary.format())
        print(f"asrkit prepare {args.corpus}: {e}", file=sys.stderr)
        return 130
    except ValueError as e:  # bad options or source: a usage error
        print(f"asrkit prepare {args.corpus}: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a source or --out that cannot be used (2), a full disk (1)
        print(f"asrkit prepare {args.corpus}: {one_line(e)}", file=sys.stderr)
        return os_error_status(e)
    print(summary.format())
    if not summary.total_kept:  # every utterance skipped: nothing a run could use
        print(f"asrkit prepare {args.corpus}: no utterance kept ({summary.total_skipped} "
              "skipped; the reasons are above)", file=sys.stderr)
        return 1
    if args.strict and summary.total_skipped:
        print(f"asrkit prepare {args.corpus}: --strict and {summary.total_skipped} skipped", file=sys.stderr)
        return 1
    return 0
