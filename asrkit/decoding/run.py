"""``asrkit decode``'s work: decode every test set with every method and score it.

    plan = make_plan(overrides)            # asrkit.decoding.plan: checked before loading
    summaries = decode_and_score(plan)

For every test set and method the result goes to
``<exp_dir>/decode/<checkpoint>/<set>/<method>[-<setting><value>...]/`` (hyp.txt, ref.txt,
wer.json, errors.txt; asrkit.scoring.decode_dir), keyed by the checkpoint and the search
settings (and the encoder's chunk size with ``decoding_chunk_size``,
asrkit.decoding.decoding_chunk, and a precision other than fp32, asrkit.decoding.precision)
so that no decode overwrites another; one line per method is printed (WER, CER, RTF) and
``<exp_dir>/results.md`` refreshed. With ``out_dir=DIR`` the results go to
``DIR/<checkpoint>/<set>/<method...>/`` instead and results.md is left alone. wer.json's
``rtf`` includes the shared feature extraction + encoder + CTC head, whose share alone is
``rtf_shared``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asrkit.checkpoint_io import recorded_hash
from asrkit.config import ConfigError
from asrkit.decoding.decode_set import decode_utterances
from asrkit.decoding.decoding_chunk import DecodingChunk
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.plan import DecodePlan, build_methods
from asrkit.decoding.precision import DecodePrecision
from asrkit.experiment_dir import ExperimentDir
from asrkit.scoring.decode_dir import (
    WER_FILE,
    checkpoint_dir_name,
    read_summary,
    result_dir,
    write_decode_result,
)
from asrkit.scoring.kaldi_text import read_text
from asrkit.scoring.results_md import refresh_results_md


def decode_and_score(plan: DecodePlan) -> list[dict[str, Any]]:
    cfg = plan.config
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    exp = load_experiment(cfg["exp_dir"], cfg["checkpoint"], cfg["device"],
                          cfg["trust_modules"])
    methods = build_methods(cfg, exp.model)
    precision = DecodePrecision.resolve(cfg["precision"], cfg["device"])
    try:
        chunk = DecodingChunk.resolve(exp.model.encoder, cfg.get("decoding_chunk_size"),
                                      cfg.get("num_decoding_left_chunks"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    out_root = Path(cfg["out_dir"]) if cfg.get("out_dir") else ExperimentDir(exp.exp_dir).decode_dir
    checkpoint = exp.checkpoint_label
    # tells a rewritten avg_N.pt from the one decoded (last.pt: the checkpoint it points to)
    identity = recorded_hash(Path(exp.checkpoint).resolve())
    exp_dir = Path(exp.exp_dir).resolve()
    # results outside the experiment may be another experiment's (one out_dir given to two)
    foreign = exp_dir not in (out_root.resolve(), *out_root.resolve().parents)
    at = (f"; encoder chunk {chunk.chunk_size}, left chunks {chunk.left_chunks}"
          if chunk.settings() else "")
    at += f"; {precision.describe()}" if precision.describe() else ""
    print(f"decoding with {exp.checkpoint} ({', '.join(methods)}{at}); "
          f"normalisation: {plan.normalizer.describe()}")
    summaries = []
    if foreign:
        _check_out_dir_owner(out_root, exp_dir)
    for set_name, (manifest, utterances) in plan.test_sets.items():
        for name, method in methods.items():  # before any decoding
            settings = {**method.settings(), **chunk.settings(), **precision.settings()}
            _check_same_set(result_dir(out_root, checkpoint, set_name, name, settings),
                            manifest, utterances)
    for set_name, (manifest, utterances) in plan.test_sets.items():
        result = decode_utterances(
            exp.model, exp.tokenizer, utterances, exp.extractor, methods, exp.cmvn,
            int(cfg["batch_size"]), int(cfg["max_frames"]), int(cfg["num_workers"]),
            cfg["device"], chunk, precision)
        for name, method in methods.items():
            settings = {**method.settings(), **chunk.settings(), **precision.settings()}
            extra = {"set": set_name, "method": name, "checkpoint": checkpoint,
                     "checkpoint_sha256": identity, "exp_dir": str(exp_dir),
                     "manifest": str(manifest), "failed": len(result.failed),
                     "audio_seconds": round(result.audio_seconds, 3),
                     "rtf_shared": round(result.shared_rtf, 5), "decode": settings}
            out_dir = result_dir(out_root, checkpoint, set_name, name, settings)
            summary = write_decode_result(out_dir, result.refs, result.hyps[name],
                                          plan.normalizer, result.rtf[name], extra)
            summaries.append(summary)
            print(f"{set_name:<14} {name:<20} WER {summary['wer']:6.2f} %  "
                  f"CER {summary['cer']:6.2f} %  [{summary['sub']} sub {summary['del']} del "
                  f"{summary['ins']} ins / {summary['ref_words']} words, {summary['utts']} utts]"
                  f"  RTF {summary['rtf']:.4f}")
        if result.failed:
            print(f"{set_name}: {len(result.failed)} utterance(s) could not be decoded and were "
                  f"scored with empty hypotheses, e.g. {result.failed[0][0]}: "
                  f"{result.failed[0][1]}")
    results = f"{out_root}/{checkpoint_dir_name(checkpoint)}/<set>/<method>/"
    if cfg.get("out_dir"):
        print(f"results: {results} ({exp.exp_dir}/results.md not refreshed: out_dir is set)")
    else:
        path = refresh_results_md(exp.exp_dir, cfg["trust_modules"])
        print(f"results: {results}, summary in {path}")
    return summaries


def _check_same_set(out_dir: Path, manifest: Path, utterances) -> None:
    """A ConfigError when ``out_dir`` holds the results of another set of the same name (a
    manifest with the same file name elsewhere, of other utterance ids): decoding would
    replace them. The same ids with corrected transcripts are the same set, decoded again.
    (Another experiment's results in an ``out_dir=`` are refused before, for the whole
    directory: _check_out_dir_owner.)"""
    ref_file = out_dir / "ref.txt"
    if not ref_file.is_file():
        return
    if set(read_text(ref_file)) != {u.id for u in utterances}:
        raise ConfigError(f"test_sets: {manifest} would replace the results in {out_dir}, "
                          f"which are of other utterances (another set of the same name); "
                          f"rename the manifest, set out_dir=..., or remove that directory")


def _check_out_dir_owner(out_root: Path, exp_dir: Path) -> None:
    """A ConfigError when an ``out_dir=`` outside the experiment already holds results of
    another experiment (under any checkpoint, set or method): one out_dir is one
    experiment's, as results.md and compare read one experiment's results."""
    for wer_file in sorted(out_root.glob(f"*/*/*/{WER_FILE}")) if out_root.is_dir() else []:
        other = _recorded_experiment(wer_file.parent)
        if other is not None and Path(other) != exp_dir:
            raise ConfigError(f"out_dir: {out_root} holds the results of another experiment "
                              f"({other}, in {wer_file.parent.relative_to(out_root)}); give "
                              "each experiment an out_dir of its own")


def _recorded_experiment(out_dir: Path) -> str | None:
    """The experiment a result directory's wer.json was decoded from (None: not recorded,
    as before asrkit recorded it, or no readable wer.json)."""
    try:
        return read_summary(out_dir).get("exp_dir")
    except (OSError, ValueError):
        return None
