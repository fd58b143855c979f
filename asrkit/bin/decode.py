"""Decode test sets with an experiment's model and score them (WER/CER, alignments, RTF).

    asrkit decode exp_dir=exp/conformer \\
        test_sets=[data/synth/test.jsonl,data/synth/test_unseen.jsonl] \\
        methods=[ctc_greedy,ctc_prefix_beam,attention,attention_rescoring,joint] \\
        beam=10 ctc_weight=0.3 search.attention_rescoring.beam=20 batch_size=32
    asrkit decode exp_dir=exp/ctc checkpoint=checkpoints/epoch_5.pt methods=[ctc_greedy] \\
        test_sets=[data/synth/dev.jsonl] normalize.case=lower device=cuda

Hydra overrides of conf/decode.yaml. The checkpoint defaults to the experiment's averaged
model (the newest `asrkit average`), else checkpoints/last.pt. Every method listed is a
section search.<method> (conf/search/<method>.yaml: its class and options; `beam` and
`ctc_weight` are shared defaults). For every test set (named by its manifest's file stem)
and method it writes <exp_dir>/decode/<checkpoint>/<set>/<method>[-<setting><value>...]/
{hyp.txt,ref.txt,wer.json,errors.txt}, prints one line per method (WER, CER, RTF) and
refreshes <exp_dir>/results.md; with out_dir=DIR the results go under DIR and results.md is
left alone. --config-dir DIR adds a config directory (DIR/search/<name>.yaml: a method of
your own). Every manifest is read and checked before the model is loaded. Every utterance
of a test set is decoded; one whose audio cannot be read gets an empty hypothesis (and a
warning).

Exit status: 0 done, 1 decoding failed (a file that could not be read, ...), 2 usage error
(a bad key or value, a missing file, checkpoint or test set), as every asrkit command.
"""

from __future__ import annotations

import logging
import sys

from asrkit.config import CONFIG_ERRORS, ConfigError, one_line
from asrkit.config.search_path import split_config_dirs


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from asrkit.decoding.plan import make_plan
    from asrkit.decoding.run import decode_and_score

    try:
        argv, config_dirs = split_config_dirs(argv)
        plan = make_plan(argv, config_dirs)
    except CONFIG_ERRORS as e:
        print(f"asrkit decode: {one_line(e)}", file=sys.stderr)
        return 2
    try:
        decode_and_score(plan)
    except (ConfigError, FileNotFoundError) as e:  # e.g. no such checkpoint: usage
        print(f"asrkit decode: {one_line(e)}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as e:
        print(f"asrkit decode: {one_line(e)}", file=sys.stderr)
        return 1
    return 0
