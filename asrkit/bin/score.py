"""Score hypotheses against references: WER/CER with S/D/I counts (sclite's alignment).

    asrkit score --ref exp/x/decode/test/joint/ref.txt --hyp exp/x/decode/test/joint/hyp.txt
    asrkit score --ref ref.txt --hyp hyp.txt --cer --normalize lower nopunct
    asrkit score --ref ref.txt --hyp hyp.txt --json          # the scoring keys of wer.json
    asrkit score --ref ref.txt --hyp hyp.txt --errors errors.txt   # aligned REF/HYP per utterance

Files hold `<id> <text>` per line (Kaldi's `text`; an id alone is an empty text). Every
reference is scored; a reference without a hypothesis counts as an empty hypothesis (all
deletions); a hypothesis without a reference is an error. --normalize takes any of
`lower upper nopunct none` and is printed with the result. Exit status 2 on bad input.

Every utterance is aligned as NIST sclite aligns it (weights substitution 4, deletion 3,
insertion 3, and sclite's tie-break), so the WER, CER, S/D/I counts and alignments equal
`sclite -s` on the same texts (CER: on the characters written as words). Unlike sclite's
default, scoring is case-sensitive: use --normalize lower to ignore case.

With --json, a rate that is undefined (no reference words but some hypothesis words) is
null; printed as text it reads `inf`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asrkit.atomic_text import write_text_atomic
from asrkit.cli_checks import check_not_an_input, check_out_file
from asrkit.config import one_line
from asrkit.scoring.kaldi_text import read_text
from asrkit.scoring.normalize import OPTION_WORDS, TextNormalizer
from asrkit.scoring.wer import (
    format_alignments,
    format_errors_file,
    format_result_line,
    json_safe,
    score_texts,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", required=True, help="reference file (<id> <text> per line)")
    parser.add_argument("--hyp", required=True, help="hypothesis file (<id> <text> per line)")
    parser.add_argument("--cer", action="store_true",
                        help="headline character error rate (whitespace removed) and show "
                             "character alignments")
    parser.add_argument("--normalize", nargs="+", default=[], metavar="OPT",
                        help=f"text normalisation: any of {' '.join(OPTION_WORDS)}")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON (the scoring keys of wer.json; "
                             "wer/cer null when undefined: no reference tokens but some "
                             "hypothesis tokens)")
    parser.add_argument("--errors", type=Path, help="write per-utterance alignments here")
    parser.add_argument("--show-alignments", action="store_true",
                        help="print the per-utterance alignments after the result")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    unit = "char" if args.cer else "word"
    try:
        normalizer = TextNormalizer.from_words(args.normalize)
        if args.errors is not None:
            check_out_file(args.errors, "--errors")
            check_not_an_input(args.errors, [args.ref, args.hyp], "--errors",
                               "one of the files scored")
        refs, hyps = read_text(args.ref), read_text(args.hyp)
        if not refs:
            raise ValueError(f"{args.ref}: no reference utterances")
        try:
            result = score_texts(refs, hyps, normalizer)
        except ValueError as e:
            raise ValueError(f"{args.hyp} against {args.ref}: {e}") from None
    except (OSError, ValueError) as e:
        print(f"asrkit score: {one_line(e)}", file=sys.stderr)
        return 2
    if args.errors:
        try:  # a failed write (a full disk) names the file and keeps the old one
            write_text_atomic(args.errors, format_errors_file(result, unit))
        except OSError as e:
            print(f"asrkit score: {one_line(e)}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(json_safe({**result.summary(), "rtf": None}), indent=2,
                         ensure_ascii=False, allow_nan=False))
        return 0
    print(format_result_line(result, unit))
    print(format_result_line(result, "word" if args.cer else "char"))
    print(f"normalisation: {normalizer.describe()}")
    if result.missing:
        print(f"{len(result.missing)} reference utterance(s) had no hypothesis "
              f"(scored as empty), e.g. {result.missing[0]}")
    if args.show_alignments:
        print()
        print(format_alignments(result.chars if args.cer else result.words), end="")
    return 0
