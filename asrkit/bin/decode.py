"""Decode test sets with an experiment's model and score them (WER/CER, alignments, RTF).

    asrkit decode exp_dir=exp/conformer checkpoint=avg_10.pt \\
        test_sets=[data/synth/test.jsonl,data/synth/test_unseen.jsonl] \\
        methods=[ctc_greedy,ctc_prefix_beam,attention,attention_rescoring,joint] \\
        beam=10 ctc_weight=0.3 batch_size=32
    asrkit decode exp_dir=exp/ctc methods=[ctc_greedy] test_sets=[data/synth/dev.jsonl] \\
        normalize.case=lower device=cuda

Hydra overrides of conf/decode.yaml (an unknown key or a bad value fails at once, naming
it). For every test set (named by its manifest's file stem) and method it writes
`<exp_dir>/decode/<set>/<method>/{hyp.txt,ref.txt,wer.json,errors.txt}`, prints one line
per method (WER, CER, RTF) and refreshes `<exp_dir>/results.md`; with `out_dir=DIR` it writes
`DIR/<set>/<method>/` instead and leaves results.md alone (`asrkit compare` and results.md
read only `<exp_dir>/decode`). Every manifest is read and checked before the model is
loaded: a malformed line or an empty test set fails at once, naming the manifest. Every
utterance of a test set is decoded; one whose audio cannot be read gets an empty hypothesis
(and a warning). wer.json's `rtf` includes the shared feature extraction + encoder + CTC
head, whose share alone is `rtf_shared`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrkit.config import CONFIG_ERRORS, compose_config, one_line

if TYPE_CHECKING:
    from asrkit.data.manifest import Utterance


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = compose_config("decode", argv)
        plan = _plan(cfg)
    except CONFIG_ERRORS as e:
        print(f"asrkit decode: {one_line(e)}", file=sys.stderr)
        return 2
    try:
        decode_and_score(cfg, *plan)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"asrkit decode: {one_line(e)}", file=sys.stderr)
        return 1
    return 0


def _plan(cfg: dict[str, Any]):
    """Validate the config and read the test sets before anything heavy: -> (test sets by
    name as (manifest, utterances), method names, options, normaliser)."""
    from asrkit.data.manifest import read_manifest
    from asrkit.decoding.methods import DecodeOptions, resolve_methods
    from asrkit.scoring.normalize import TextNormalizer

    if not cfg.get("exp_dir"):
        raise ValueError("exp_dir: required (the experiment directory to decode with)")
    if not Path(cfg["exp_dir"]).is_dir():
        raise ValueError(f"exp_dir: {cfg['exp_dir']} is not a directory")
    test_sets = cfg.get("test_sets")
    if isinstance(test_sets, str):
        test_sets = [test_sets]
    if not test_sets:
        raise ValueError("test_sets: required, e.g. test_sets=[data/synth/test.jsonl]")
    sets: dict[str, tuple[Path, list[Utterance]]] = {}
    for manifest in map(Path, test_sets):
        if not manifest.is_file():
            raise ValueError(f"test_sets: {manifest} not found")
        if manifest.stem in sets:
            raise ValueError(f"test_sets: {sets[manifest.stem][0]} and {manifest} would both be "
                             f"named {manifest.stem!r}")
        utterances = read_manifest(manifest)
        if not utterances:
            # scored, it would show as 0.00 % WER over 0 utterances in results.md and compare
            raise ValueError(f"test_sets: {manifest} has no utterances")
        sets[manifest.stem] = (manifest, utterances)
    methods = cfg["methods"] if isinstance(cfg["methods"], list) else [cfg["methods"]]
    resolve_methods(methods)
    options = DecodeOptions(beam=int(cfg["beam"]), ctc_weight=float(cfg["ctc_weight"]),
                            length_penalty=float(cfg["length_penalty"]),
                            length_norm=bool(cfg["length_norm"]), ctc_top_k=cfg["ctc_top_k"],
                            pre_beam=cfg["pre_beam"], rescoring_beam=cfg["rescoring_beam"],
                            max_len_ratio=float(cfg["max_len_ratio"]))
    for key in ("batch_size", "max_frames"):
        if int(cfg[key]) < 1:
            raise ValueError(f"{key}: must be >= 1, got {cfg[key]}")
    return sets, methods, options, TextNormalizer.from_dict(cfg["normalize"])


def decode_and_score(cfg: dict[str, Any], sets: dict[str, tuple[Path, list[Utterance]]],
                     method_names: list[str], options, normalizer) -> list[dict[str, Any]]:
    import torch

    from asrkit.decoding.decode_set import decode_utterances
    from asrkit.decoding.experiment import load_experiment
    from asrkit.decoding.methods import resolve_methods
    from asrkit.scoring.decode_dir import write_decode_result
    from asrkit.scoring.results_md import refresh_results_md

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    exp = load_experiment(cfg["exp_dir"], cfg["checkpoint"], cfg["device"])
    methods = resolve_methods(method_names, exp.model)
    out_root = Path(cfg["out_dir"]) if cfg.get("out_dir") else exp.exp_dir / "decode"
    checkpoint = _relative(exp.checkpoint, exp.exp_dir)
    print(f"decoding with {exp.checkpoint} ({', '.join(method_names)}); "
          f"normalisation: {normalizer.describe()}")
    summaries = []
    for set_name, (manifest, utterances) in sets.items():
        result = decode_utterances(
            exp.model, exp.tokenizer, utterances, exp.extractor, methods, options, exp.cmvn,
            int(cfg["batch_size"]), int(cfg["max_frames"]), int(cfg["num_workers"]),
            cfg["device"])
        for method in methods:
            extra = {"set": set_name, "method": method.name, "checkpoint": checkpoint,
                     "manifest": str(manifest), "failed": len(result.failed),
                     "audio_seconds": round(result.audio_seconds, 3),
                     "rtf_shared": round(result.shared_rtf, 5),
                     "decode": method.options_used(options)}
            summary = write_decode_result(out_root / set_name / method.name, result.refs,
                                          result.hyps[method.name], normalizer,
                                          result.rtf[method.name], extra)
            summaries.append(summary)
            print(f"{set_name:<14} {method.name:<20} WER {summary['wer']:6.2f} %  "
                  f"CER {summary['cer']:6.2f} %  [{summary['sub']} sub {summary['del']} del "
                  f"{summary['ins']} ins / {summary['ref_words']} words, {summary['utts']} utts]"
                  f"  RTF {summary['rtf']:.4f}")
        if result.failed:
            print(f"{set_name}: {len(result.failed)} utterance(s) could not be decoded and were "
                  f"scored with empty hypotheses, e.g. {result.failed[0][0]}: "
                  f"{result.failed[0][1]}")
    if cfg.get("out_dir"):
        print(f"results: {out_root}/<set>/<method>/ ({exp.exp_dir}/results.md not refreshed: "
              "out_dir is set)")
    else:
        path = refresh_results_md(exp.exp_dir)
        print(f"results: {out_root}/<set>/<method>/, summary in {path}")
    return summaries


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())
