"""Show the model a training config builds and its parameter counts.

    asrkit info +experiment=aishell/conformer vocab_size=4233
    asrkit info encoder=transformer model=ctc vocab_size=500 --json
    asrkit info tokenizer.dir=data/synth/tokenizer

Takes the same Hydra overrides as `asrkit train` (composed from conf/train.yaml) and prints
the model followed by a parameter table (total, encoder, decoder, CTC, and their parts);
--json prints one JSON object instead: {"total", "encoder", "decoder", "ctc", "vocab_size",
"components"}. The output size is `vocab_size=N`, or else the vocabulary of the tokenizer
in `tokenizer.dir`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asrkit.config_paths import config_dir

CONFIG_ERRORS = (HydraException, OmegaConfBaseException, ValueError, OSError, ImportError)


def compose_train_config(overrides: list[str]) -> dict[str, Any]:
    """conf/train.yaml with Hydra ``overrides`` applied, resolved into plain containers."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def resolve_vocab_size(config: dict[str, Any]) -> int:
    """``vocab_size`` if set, else the vocabulary size of the tokenizer in ``tokenizer.dir``."""
    if config.get("vocab_size") is not None:
        return int(config["vocab_size"])
    tokenizer_dir = (config.get("tokenizer") or {}).get("dir")
    if tokenizer_dir is None:
        raise ValueError("no output size: set vocab_size=N or tokenizer.dir=<tokenizer directory>")
    from asrkit.text.tokenizer import load_tokenizer

    return int(load_tokenizer(tokenizer_dir).vocab_size)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asrkit info", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. encoder.num_layers=6")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    return parser


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from asrkit.models.build import build_model
    from asrkit.models.param_count import count_parameters, format_parameter_table

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
