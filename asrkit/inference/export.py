"""``asrkit export``: an experiment's model as a self-contained directory of ONNX graphs (run
with onnxruntime) or TorchScript modules, plus its tokenizer, CMVN statistics, feature
settings and a description (asrkit.inference.exported_dir), from which ``asrkit
transcribe`` runs without the training code building a model from its config.

    report = export_model("exp/conformer", "exported/", runtime="onnx")
    report.max_abs_diff       # {"ctc_log_probs": 1.9e-06, "decoder_scores": 3.8e-06}
    report.size_bytes

Graphs (asrkit.inference.exported_dir; asrkit.inference.model_graphs): ``encoder`` (feats,
feat_lens -> enc, enc_lens), for models with a CTC head ``ctc`` (enc -> log-probabilities),
with an attention decoder ``decoder`` (the teacher-forced decoder, for rescoring), and with a
transducer its three search calls ``encoder_projection``, ``prediction`` (one step) and
``joiner`` (asrkit.inference.transducer_graphs), each with dynamic batch (hypothesis) and time axes
(ONNX: ``dynamic_axes``; TorchScript: traced, with the tracer recording the shape
arithmetic). All are recorded by tracing the eager model in fp32 on the CPU, with the two
blocks whose fast kernels cannot be traced replaced by their traceable forms
(asrkit.inference.traceable).

With ``chunk_size`` (``asrkit export --streaming``) also ``encoder_chunk``, the streaming
encoder step at that chunk size and ``left_chunks`` (chunk and caches in, output and caches
out; asrkit.inference.encoder_chunk_graph), with the chunk settings in model.json's
``streaming``; the model must stream (asrkit.inference.streaming.check_streamable).

The export is checked before it is declared done: the exported graphs are run on one
batch of utterances of several lengths (random features) beside the eager model, and the
encoder lengths, the CTC log-probabilities (valid frames), the decoder's hypothesis scores
and the transducer's projected frames, prediction outputs and joint log-probabilities
(asrkit.inference.transducer_graphs.compare_transducers), and the streaming step's output
and caches over five chunks fed back (asrkit.inference.encoder_chunk_graph
.compare_chunk_steps) must agree within ``tolerance`` (1e-4); otherwise the export fails.
The export is written and checked in a hidden directory inside ``out_dir``
(``.partial-<pid>``, on the same filesystem, so the move is renames) and moved in only once
checked, so a failed export leaves an earlier one in ``out_dir`` as it was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from asrkit.cli_checks import out_dir_problem
from asrkit.config import ConfigError
from asrkit.decoding.experiment import Experiment, load_experiment
from asrkit.inference.alignment import FrameTiming
from asrkit.inference.encoder_chunk_graph import EncoderChunkGraph, compare_chunk_steps
from asrkit.inference.exported_dir import (
    ALL_GRAPHS,
    FORMAT_VERSION,
    RUNTIMES,
    STREAMING_GRAPH,
    ExportedDir,
    model_family,
)
from asrkit.inference.exported_model import ExportedModel
from asrkit.inference.model_graphs import graph_specs
from asrkit.inference.streaming import check_streamable
from asrkit.inference.traceable import traceable_forms
from asrkit.inference.transducer_graphs import (
    compare_transducers,
    state_description,
    transducer_example_inputs,
)
from asrkit.models.mask import padding_mask
from asrkit.text.registry import fingerprint

OPSET = 17
TRACE_LENGTHS = (301, 230)            # fbank frames of the utterances the graphs are traced on
# the check batch's: one longer than any traced, so that a length the trace froze into a
# graph (a Python comparison on a shape) cannot pass unseen
CHECK_LENGTHS = (460, 301, 117, 45)


class ExportError(RuntimeError):
    """The exported graphs disagree with the eager model (or could not be written)."""


@dataclass
class ExportReport:
    out_dir: Path
    family: str
    runtime: str
    size_bytes: int
    max_abs_diff: dict[str, float]


def example_inputs(model: nn.Module, bins: int, lengths: Sequence[int],
                   seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Inputs of every graph for a batch of utterances of ``lengths`` fbank frames."""
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), bins, generator=generator)
    feat_lens = torch.tensor(list(lengths))
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
    inputs = {"encoder": (feats, feat_lens), "ctc": (enc,)}
    if model.transducer is not None:
        inputs.update(transducer_example_inputs(model.transducer, enc, seed))
    if model.decoder is not None:
        tokens = torch.randint(3, model.vocab_size, (len(lengths), 7), generator=generator)
        tokens[:, 0] = model.sos_id
        token_lens = torch.tensor([7, 4, 6, 1, 5, 3][: len(lengths)] + [7] * (len(lengths) - 6))
        inputs["decoder"] = (tokens, padding_mask(token_lens, 7), enc,
                             padding_mask(enc_lens, enc.size(1)))
    return inputs


def export_graph(module: nn.Module, inputs: tuple, in_specs: list, out_specs: list,
                 path: Path, runtime: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes: checked afterwards
        if runtime == "onnx":
            dynamic = {s["name"]: {i: axis for i, axis in enumerate(s["shape"])
                                   if isinstance(axis, str)} for s in in_specs + out_specs}
            torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=OPSET,
                              input_names=[s["name"] for s in in_specs],
                              output_names=[s["name"] for s in out_specs],
                              dynamic_axes=dynamic)
        else:
            torch.jit.trace(module, inputs, check_trace=False).save(str(path))


def _onnx_inputs(path: Path, in_specs: list[dict]) -> list[dict]:
    """The specs of the inputs the ONNX graph at ``path`` kept: the exporter leaves out an
    input the graph does not use (the streaming step's ``offset`` with relative positions)."""
    import onnx

    kept = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    return [spec for spec in in_specs if spec["name"] in kept]


def export_model(exp_dir: str | Path, out_dir: str | Path, runtime: str = "onnx",
                 checkpoint: str | None = None, trusted_modules: Sequence[str] = (),
                 tolerance: float = 1e-4, chunk_size: int | None = None,
                 left_chunks: int = -1) -> ExportReport:
    """Export the experiment's model (``checkpoint``; None: its averaged model) to
    ``out_dir`` and check it against the eager model (module docstring); ``chunk_size``
    (encoder frames) and ``left_chunks`` (-1: all): also the streaming encoder step."""
    if runtime not in RUNTIMES:
        raise ValueError(f"format: {runtime!r} unknown (known: {', '.join(RUNTIMES)})")
    out = _check_out_dir(out_dir)
    exp = load_experiment(exp_dir, checkpoint, "cpu", trusted_modules)
    model = exp.model.float().eval()
    try:
        family = model_family(model)
    except ValueError as e:
        raise ConfigError(f"{exp.checkpoint}: {e}") from None
    bins = exp.extractor.num_mel_bins
    chunk_graph = None if chunk_size is None else _chunk_graph(model, bins, chunk_size,
                                                                left_chunks)
    created = not out.exists()
    stage = out / f"{PARTIAL_PREFIX}{os.getpid()}"  # checked, then moved in (one filesystem)
    stage.mkdir(parents=True)
    try:
        diffs = _export_into(exp, model, family, bins, chunk_graph, runtime, tolerance, stage)
        _move_into(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportReport(out, family, runtime, size, diffs)


def _export_into(exp: Experiment, model: nn.Module, family: str, bins: int,
                 chunk_graph: EncoderChunkGraph | None, runtime: str, tolerance: float,
                 out: Path) -> dict[str, float]:
    """The graphs, tokenizer, CMVN and model.json written to ``out`` and checked; -> the
    check's largest differences."""
    specs = graph_specs(model, bins)
    exported = ExportedDir(out)
    inputs = example_inputs(model, bins, TRACE_LENGTHS, seed=1)
    if chunk_graph is not None:
        specs[STREAMING_GRAPH] = (chunk_graph, *chunk_graph.specs())
        inputs[STREAMING_GRAPH] = chunk_graph.example_inputs(seed=1)
    with traceable_forms(model), torch.no_grad():
        for name, (module, in_specs, out_specs) in specs.items():
            path = exported.graph_file(name, runtime)
            export_graph(module, inputs[name], in_specs, out_specs, path, runtime)
            if runtime == "onnx":  # model.json lists the inputs the graph really takes
                specs[name] = (module, _onnx_inputs(path, in_specs), out_specs)
    exp.tokenizer.save(exported.tokenizer_dir)
    if exp.cmvn is not None:
        exp.cmvn.save(exported.cmvn_file)
    info = _description(exp, family, runtime, specs)
    if chunk_graph is not None:
        info["streaming"] = chunk_graph.description()
    exported.write_info(info)
    diffs = check_export(model, out, bins, tolerance)
    info["check"] = {"lengths": list(CHECK_LENGTHS), "max_abs_diff": diffs,
                     "tolerance": tolerance}
    exported.write_info(info)
    return diffs


def check_export(model: nn.Module, out: Path, bins: int, tolerance: float) -> dict[str, float]:
    """Run the exported graphs and the eager model on a batch of CHECK_LENGTHS; the largest
    absolute differences, by output. Raises ExportError beyond ``tolerance``."""
    exported = ExportedModel.load(out)
    feats, feat_lens = example_inputs(model, bins, CHECK_LENGTHS, seed=2)["encoder"]
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, feat_lens)
    x_enc, x_lens = exported.encode(feats, feat_lens)
    if not torch.equal(x_lens, enc_lens):
        raise ExportError(f"{out}: exported encoder lengths {x_lens.tolist()} differ from the "
                          f"eager model's {enc_lens.tolist()}")
    valid = padding_mask(enc_lens, enc.size(1))
    diffs = {}
    if model.ctc is not None:
        with torch.no_grad():
            ctc = model.ctc_log_probs(enc)
        diffs["ctc_log_probs"] = float((exported.ctc_log_probs(x_enc) - ctc)[valid].abs().max())
    if model.transducer is not None:
        diffs.update(compare_transducers(model.transducer, exported.transducer, enc, x_enc,
                                         enc_lens))
    if model.decoder is not None:
        generator = torch.Generator().manual_seed(3)
        hyps = [torch.randint(3, model.vocab_size, (n,), generator=generator).tolist()
                for n in (9, 4, 6, 1)]
        with torch.no_grad():
            eager = model.score_hypotheses(enc, enc_lens, hyps)
        diffs["decoder_scores"] = float((exported.score_hypotheses(x_enc, x_lens, hyps)
                                         - eager).abs().max())
    if exported.encoder_chunk is not None:
        step = exported.encoder_chunk
        diffs["encoder_chunk"] = compare_chunk_steps(model.encoder, step, bins,
                                                     step.chunk_size, step.left_chunks)
    worst = max(diffs, key=diffs.get)
    if not diffs[worst] <= tolerance:
        raise ExportError(f"{out}: exported {worst} differ from the eager model's by "
                          f"{diffs[worst]:.3g} (> {tolerance:g})")
    return diffs


def _chunk_graph(model: nn.Module, bins: int, chunk_size: int,
                 left_chunks: int) -> EncoderChunkGraph:
    """The streaming step's graph; a ConfigError naming what keeps the model from it."""
    try:
        check_streamable(model)
        return EncoderChunkGraph.for_encoder(model.encoder, bins, chunk_size, left_chunks)
    except ValueError as e:
        raise ConfigError(f"--streaming: {e}") from None


PARTIAL_PREFIX = ".partial-"  # the directory an export is built in, inside out_dir


def _check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` as a Path, refused when it is a file or a directory of something else."""
    out = Path(out_dir)
    if (problem := out_dir_problem(out)) is not None:
        raise FileExistsError(f"--out {problem}")
    for leftover in out.glob(f"{PARTIAL_PREFIX}*") if out.is_dir() else ():
        if not _running(leftover.name.removeprefix(PARTIAL_PREFIX)):
            shutil.rmtree(leftover, ignore_errors=True)  # an interrupted export's
    if out.is_dir() and any(out.iterdir()) and not ExportedDir.holds_export(out):
        raise FileExistsError(f"--out: {out} is not empty and holds no exported model; "
                              f"refusing to write into it")
    return out


def _running(pid: str) -> bool:
    """Whether process ``pid`` (a partial export's owner) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # someone else's
        return True
    return True


def _move_into(stage: Path, out: Path) -> None:
    """The checked export in ``stage`` replaces the one in ``out`` (if any): the old
    model.json goes first and the new one comes last, so that ``out`` never describes
    graphs it does not hold; files of the user's own in ``out`` stay."""
    out.mkdir(parents=True, exist_ok=True)
    stale = ["model.json", "tokenizer", "cmvn.json",
             *(f"{g}{s}" for g in ALL_GRAPHS for s in RUNTIMES.values())]
    for name in stale:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    info = ExportedDir(stage).info_file
    for item in stage.iterdir():
        if item != info:
            os.replace(item, out / item.name)
    os.replace(info, out / info.name)


def _description(exp: Experiment, family: str, runtime: str, specs: dict) -> dict:
    extractor = exp.extractor
    timing = FrameTiming.of_encoder(exp.model.encoder.output_lengths,
                                    extractor.frame_shift / 1000, extractor.frame_length / 1000)
    model = exp.model
    return {
        "format_version": FORMAT_VERSION, "family": family, "runtime": runtime,
        "graphs": {name: {"file": f"{name}{RUNTIMES[runtime]}", "inputs": ins, "outputs": outs}
                   for name, (_, ins, outs) in specs.items()},
        "vocab_size": model.vocab_size, "blank_id": model.blank_id, "sos_id": model.sos_id,
        "eos_id": model.eos_id, "features": dataclasses.asdict(extractor),
        "frame_period": timing.period, "first_frame_centre": timing.first_centre,
        "cmvn": exp.cmvn is not None, "tokenizer": "tokenizer",
        "tokenizer_fingerprint": fingerprint(exp.tokenizer),
        "source": {"exp_dir": str(exp.exp_dir.resolve()), "checkpoint": exp.checkpoint_label,
                   "torch": torch.__version__, "opset": OPSET if runtime == "onnx" else None},
        "config": json.loads(json.dumps(exp.config, default=str)),
        **({"transducer": {"blank_id": model.transducer.blank_id,
                           "state": state_description(model.transducer)}}
           if model.transducer is not None else {}),
    }
