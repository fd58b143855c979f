"""Train a tokenizer (sentencepiece bpe/unigram word pieces, or characters) on manifest text.

    asrkit tokenizer --manifest data/synth/train.jsonl --type bpe --vocab-size 100 --out data/synth/bpe100
    asrkit tokenizer --manifest data/aishell/train.jsonl --type char --out data/aishell/char

Ids are fixed: 0 <blank>, 1 <unk>, 2 <sos/eos> (see asrkit/text/base.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asrkit.cli_checks import out_dir_problem
from asrkit.config import one_line
from asrkit.data.manifest import ManifestError, read_manifest
from asrkit.text.base import TokenizerError
from asrkit.text.registry import train_tokenizer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asrkit tokenizer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, action="append", required=True,
                   help="training manifest (repeat for several)")
    p.add_argument("--type", choices=["bpe", "unigram", "char"], required=True)
    p.add_argument("--vocab-size", type=int, default=None,
                   help="total units including the 3 specials (required for bpe/unigram; "
                        "for char, caps the character set)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if (problem := out_dir_problem(args.out)) is not None:
        print(f"asrkit tokenizer: --out {problem}", file=sys.stderr)
        return 2
    try:
        texts = [u.text for m in args.manifest for u in read_manifest(m)]
        tokenizer = train_tokenizer(texts, args.type, args.vocab_size)
        tokenizer.save(args.out)
    except (ManifestError, TokenizerError) as e:
        print(f"asrkit tokenizer: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. a full disk while saving: the old tokenizer is kept
        print(f"asrkit tokenizer: {one_line(e)}", file=sys.stderr)
        return 1
    unk = sum(t.count(1) for t in map(tokenizer.encode, texts))
    tokens = sum(len(tokenizer.encode(t)) for t in texts)
    print(f"{args.type} tokenizer with {tokenizer.vocab_size} units -> {args.out} "
          f"({len(texts)} sentences, {tokens} tokens, {tokens / max(len(texts), 1):.1f} per sentence, "
          f"{unk} unk)")
    return 0
