"""Show the model a training config builds and its parameter counts.

    asrkit info +experiment=aishell/conformer vocab_size=4233
    asrkit info encoder=transformer model=ctc vocab_size=500 --json
    asrkit info encoder=moe_conformer encoder.num_experts=8 vocab_size=100 --json
    asrkit info tokenizer.dir=data/synth/tokenizer

Takes the same Hydra overrides as `asrkit train` (composed from conf/train.yaml) and prints
the model followed by a parameter table (total, encoder, decoder, CTC, training-only parts,
and their children; for a Mixture-of-Experts encoder also the parameters active per frame);
--json prints one JSON object instead: {"total", "encoder", "decoder", "transducer", "ctc",
"inter_decoders", "interctc", "training_only", "inference", "active_per_frame",
"vocab_size", "components"} (asrkit.models.param_count says what each means). The output
size is `vocab_size=N`, or else the vocabulary of the tokenizer in `tokenizer.dir`.
"""

from __future__ import annotations

import argparse
import json
import sys

from asrkit.config import CONFIG_ERRORS, compose_train_config, one_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit info", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. encoder.num_layers=6")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrkit.models.build import build_model
    from asrkit.models.param_count import count_parameters, format_parameter_table
    from asrkit.text.registry import resolve_vocab_size

    try:
        config = compose_train_config(args.overrides)
        vocab_size = resolve_vocab_size(config)
        model = build_model(config, vocab_size)
    except CONFIG_ERRORS as e:
        print(f"asrkit info: {one_line(e)}", file=sys.stderr)
        return 2
    counts = count_parameters(model)
    if args.json:
        print(json.dumps({**counts, "vocab_size": vocab_size}, indent=2))
        return 0
    print(model)
    print()
    print(f"vocab_size: {vocab_size}")
    print(format_parameter_table(counts))
    return 0
