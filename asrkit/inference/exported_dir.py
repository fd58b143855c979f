"""The exported model directory (``asrkit export``): its layout and its description file,
the one module that spells them.

    exported/
      model.json        what is here: format version, model family, runtime, the graphs with
                        their inputs and outputs, token ids, feature settings, encoder frame
                        timing, the training config, where it came from, the export check
      encoder.onnx      feats (batch, time, mel), feat_lens (batch,) -> enc (batch, frames, d),
                        enc_lens (batch,)                      (.pt for TorchScript)
      ctc.onnx          enc -> ctc_log_probs (batch, frames, vocab)
      decoder.onnx      the attention decoder, teacher-forced (models with one):
                        tokens (n, u), token_mask (n, u), enc (n, frames, d), enc_mask
                        (n, frames) -> log_probs (n, u, vocab)
      encoder_projection.onnx, prediction.onnx, joiner.onnx
                        the transducer (models with one; asrkit.inference.transducer_graphs):
                        enc -> enc_proj (batch, frames, joint); one prediction step: tokens
                        (n,), state_0.. -> pred (n, joint), next_state_0..; the joint:
                        enc_proj (n, joint), pred (n, joint) -> log_probs (n, vocab)
      encoder_chunk.onnx
                        the streaming encoder step (``asrkit export --streaming``;
                        asrkit.inference.encoder_chunk_graph): chunk_feats, offset,
                        att_cache[, cnn_cache] -> enc, next_att_cache[, next_cnn_cache]
      tokenizer/        a copy of the experiment's tokenizer
      cmvn.json         the CMVN statistics (absent for a model trained without)

Families name the model's branches (``model_family``): ``ctc`` (encoder + CTC head),
``ctc_attention`` (plus the attention decoder), ``transducer`` (a transducer alone) and the
hybrids ``transducer_ctc`` and ``transducer_ctc_attention``. A transducer's description
also holds ``transducer``: its blank id and the prediction network's initial state
(per state tensor its dtype, its shape after the hypothesis axis and the value it is
filled with), from which an exported model starts its searches. An export with the
streaming step also holds ``streaming``: the chunk settings it was exported for
(``chunk_size``, ``left_chunks``, the input ``window`` and ``stride`` in feature frames,
``context``: feature frames of one encoder frame) and the cache layout (``layers``,
``att_cache``: [heads, 2 d_head], ``cnn_cache``: [kernel - 1, d] or null).

    info = ExportedDir("exported").read_info(trusted_modules=[])
    info.family, info.runtime, info.graphs["encoder"].file, info.features
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asrkit.models.trusted_targets import check_trusted

FORMAT_VERSION = 1
RUNTIMES = {"onnx": ".onnx", "torchscript": ".pt"}
TRANSDUCER_GRAPHS = ("encoder_projection", "prediction", "joiner")
GRAPHS_OF_FAMILY = {
    "ctc": ("encoder", "ctc"),
    "ctc_attention": ("encoder", "ctc", "decoder"),
    "transducer": ("encoder", *TRANSDUCER_GRAPHS),
    "transducer_ctc": ("encoder", "ctc", *TRANSDUCER_GRAPHS),
    "transducer_ctc_attention": ("encoder", "ctc", "decoder", *TRANSDUCER_GRAPHS),
}
FAMILIES = tuple(GRAPHS_OF_FAMILY)
STREAMING_GRAPH = "encoder_chunk"  # any family, with `asrkit export --streaming`
ALL_GRAPHS = (*dict.fromkeys(g for graphs in GRAPHS_OF_FAMILY.values() for g in graphs),
              STREAMING_GRAPH)


def model_family(model: Any) -> str:
    """The family of an ASRModel (or an exported model): its branches joined by ``_``,
    e.g. ``ctc_attention``, ``transducer``, ``transducer_ctc``."""
    parts = [name for name, part in (("transducer", "transducer"), ("ctc", "ctc"),
                                     ("attention", "decoder"))
             if getattr(model, part, None) is not None]
    family = "_".join(parts)
    if family not in GRAPHS_OF_FAMILY:
        raise ValueError(f"a model with branches {parts} is of no family asrkit can export or "
                         f"transcribe (known: {', '.join(FAMILIES)})")
    return family


@dataclass(frozen=True)
class Graph:
    file: str
    inputs: list[dict[str, Any]]    # {"name", "dtype", "shape"} (shape entries: int or axis name)
    outputs: list[dict[str, Any]]


def tensor_spec(name: str, dtype: str, *shape: int | str) -> dict[str, Any]:
    """A graph input's or output's entry in model.json (``Graph.inputs``/``outputs``)."""
    return {"name": name, "dtype": dtype, "shape": list(shape)}


@dataclass(frozen=True)
class ExportInfo:
    family: str
    runtime: str
    graphs: dict[str, Graph]
    vocab_size: int
    blank_id: int
    sos_id: int
    eos_id: int
    features: dict[str, Any]        # FbankExtractor's fields
    frame_period: float             # seconds between encoder frames
    first_frame_centre: float       # seconds
    config: dict[str, Any]          # the training config (never instantiated)
    raw: dict[str, Any]             # the whole file
    transducer: dict[str, Any] | None = None  # blank_id, state: [{dtype, shape, fill}]
    streaming: dict[str, Any] | None = None   # chunk settings and caches (--streaming)


class ExportedDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def info_file(self) -> Path:
        return self.path / "model.json"

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def cmvn_file(self) -> Path:
        return self.path / "cmvn.json"

    def graph_file(self, name: str, runtime: str) -> Path:
        return self.path / f"{name}{RUNTIMES[runtime]}"

    @staticmethod
    def holds_export(path: str | Path) -> bool:
        """Whether ``path`` is an exported model directory (rather than an experiment)."""
        return (Path(path) / "model.json").is_file()

    def write_info(self, info: dict[str, Any]) -> None:
        self.info_file.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

    def read_info(self, trusted_modules: Sequence[str] = ()) -> ExportInfo:
        """model.json, checked: a known version, family and runtime, every graph file
        present, and a stored config that names only asrkit's building blocks (or
        ``trusted_modules``; asrkit.models.trusted_targets)."""
        where = self.info_file
        try:
            raw = json.loads(where.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{where}: not found (not a directory written by "
                                    f"`asrkit export`)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: not an asrkit export description of format version "
                             f"{FORMAT_VERSION}")
        family, runtime = raw.get("family"), raw.get("runtime")
        if family not in FAMILIES:
            raise ValueError(f"{where}: model family {family!r} cannot be run here (known: "
                             f"{', '.join(FAMILIES)})")
        if runtime not in RUNTIMES:
            raise ValueError(f"{where}: runtime {runtime!r} unknown (known: "
                             f"{', '.join(RUNTIMES)})")
        check_trusted(raw.get("config"), str(where), trusted_modules)
        try:
            names = GRAPHS_OF_FAMILY[family] + ((STREAMING_GRAPH,) if "streaming" in raw else ())
            graphs = {name: Graph(**raw["graphs"][name]) for name in names}
            info = ExportInfo(family, runtime, graphs, int(raw["vocab_size"]),
                              int(raw["blank_id"]), int(raw["sos_id"]), int(raw["eos_id"]),
                              dict(raw["features"]), float(raw["frame_period"]),
                              float(raw["first_frame_centre"]), raw["config"], raw,
                              _transducer_info(raw) if "transducer" in family else None,
                              _streaming_info(raw) if "streaming" in raw else None)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: malformed ({type(e).__name__}: {e})") from None
        for name, graph in info.graphs.items():
            if Path(graph.file).name != graph.file or not (self.path / graph.file).is_file():
                raise FileNotFoundError(f"{where}: graph {name!r} file {graph.file!r} is not "
                                        f"in {self.path}")
        return info


STATE_DTYPES = ("float32", "int64")


def _transducer_info(raw: dict[str, Any]) -> dict[str, Any]:
    """model.json's ``transducer`` entry, checked (KeyError / TypeError / ValueError)."""
    entry = raw["transducer"]
    state = [{"dtype": str(s["dtype"]), "shape": [int(d) for d in s["shape"]],
              "fill": float(s["fill"])} for s in entry["state"]]
    if any(s["dtype"] not in STATE_DTYPES or min(s["shape"], default=0) < 0 for s in state):
        raise ValueError(f"transducer state {state}: dtypes must be in {STATE_DTYPES} and "
                         f"sizes >= 0")
    return {"blank_id": int(entry["blank_id"]), "state": state}


def _streaming_info(raw: dict[str, Any]) -> dict[str, Any]:
    """model.json's ``streaming`` entry, checked (KeyError / TypeError / ValueError)."""
    entry = raw["streaming"]
    info = {key: int(entry[key]) for key in ("chunk_size", "left_chunks", "window", "stride",
                                             "context", "layers")}
    info["graph"] = str(entry["graph"])
    info["att_cache"] = [int(d) for d in entry["att_cache"]]
    info["cnn_cache"] = None if entry["cnn_cache"] is None else [int(d) for d in
                                                                  entry["cnn_cache"]]
    if info["graph"] != STREAMING_GRAPH or info["chunk_size"] < 1 or info["left_chunks"] < -1 \
            or len(info["att_cache"]) != 2 or len(info["cnn_cache"] or (0, 0)) != 2:
        raise ValueError(f"streaming entry {entry} is not one `asrkit export --streaming` "
                         f"writes")
    return info
