"""The exported streaming encoder step (``asrkit export --streaming``;
asrkit/inference/encoder_chunk_graph.py) run with onnxruntime, its caches fed back chunk
after chunk, equals the eager encoder's ``forward_chunk`` (output and caches within 1e-4)
over eight chunks (the last one shorter) of a batch, for a causal Conformer and for
Transformers with absolute and relative positions, with all left context and with two
chunks of it; model.json records the chunk settings; the command refuses what cannot
stream."""

from __future__ import annotations

import json
import shutil

import onnxruntime  # noqa: F401 (the `export` extra: these tests need it)
import pytest
import torch

from asrkit.bin.export import main
from asrkit.decoding.experiment import load_experiment
from asrkit.inference.export import export_model
from asrkit.inference.exported_model import ExportedModel
from asrkit.models.chunk_by_chunk import input_window
from tests.conftest import _make_experiment
from tests.inference.test_streaming import _experiment

CHUNK = 4


@pytest.fixture(scope="module")
def exp_dirs(synth_dir, tmp_path_factory):
    """Random tiny models: a causal Conformer (with CMVN, tests/inference/test_streaming.py),
    and Transformers (tests/conftest.py) with absolute and relative positions."""
    root = tmp_path_factory.mktemp("streaming_exports")
    manifest = synth_dir / "train.jsonl"
    dirs = {"conformer": _experiment(root / "conformer", manifest, causal=True)}
    for name, extra in (("transformer", ()),
                        ("transformer_rel", ("encoder.pos_enc_layer_type=rel_pos",))):
        dirs[name] = _make_experiment(root / name, manifest, extra=extra)
        shutil.copy(dirs[name] / "avg_2.pt", dirs[name] / "checkpoints" / "last.pt")
    return dirs


@pytest.mark.parametrize("left_chunks", [-1, 2])
@pytest.mark.parametrize("name", ["conformer", "transformer", "transformer_rel"])
def test_onnx_step_equals_eager_forward_chunk(exp_dirs, tmp_path, name, left_chunks):
    report = export_model(exp_dirs[name], tmp_path / "out", "onnx", chunk_size=CHUNK,
                          left_chunks=left_chunks)
    assert report.max_abs_diff["encoder_chunk"] < 1e-4  # the export's own check
    info = json.loads((tmp_path / "out" / "model.json").read_text())
    assert info["graphs"]["encoder_chunk"]["file"] == "encoder_chunk.onnx"
    exp = load_experiment(exp_dirs[name])
    encoder, bins = exp.model.encoder.float().eval(), exp.extractor.num_mel_bins
    window, stride = input_window(encoder.input_layer, CHUNK)
    streaming = info["streaming"]
    assert (streaming["chunk_size"], streaming["left_chunks"]) == (CHUNK, left_chunks)
    assert (streaming["window"], streaming["stride"]) == (window, stride)
    assert (streaming["cnn_cache"] is None) == name.startswith("transformer")
    step = ExportedModel.load(tmp_path / "out").encoder_chunk
    graph_inputs = [i.name for i in step.graph.session.get_inputs()]
    assert ("offset" in graph_inputs) == (name == "transformer")  # absolute positions only
    # model.json lists exactly the inputs the graph takes, so other runtimes can feed them
    assert [s["name"] for s in info["graphs"]["encoder_chunk"]["inputs"]] == graph_inputs

    feats = torch.randn(3, 6 * stride + window + 2 * encoder.input_layer.factor, bins,
                        generator=torch.Generator().manual_seed(5))  # 7 chunks, a short 8th
    att, cnn, caches, offset, sizes = [], [], step.initial_caches(3), 0, []
    for start in range(0, feats.size(1) - step.context + 1, stride):
        chunk = feats[:, start: start + window]
        with torch.no_grad():
            enc, att, cnn = encoder.forward_chunk(chunk, offset, att, cnn, left_chunks)
        x_enc, *caches = step(chunk, torch.tensor(offset), *caches)
        torch.testing.assert_close(x_enc, enc, atol=1e-4, rtol=0)
        torch.testing.assert_close(caches[0], torch.stack(att), atol=1e-4, rtol=0)
        if cnn:
            torch.testing.assert_close(caches[1], torch.stack(cnn), atol=1e-4, rtol=0)
        offset += enc.size(1)
        sizes.append((enc.size(1), caches[0].size(3)))
    assert len(sizes) == 8 and sizes[-1][0] < CHUNK  # the last chunk is shorter
    seen = [CHUNK * n + q for n, (q, _) in enumerate(sizes)]  # frames so far
    assert [c for _, c in sizes] == ([min(f, 2 * q) for f, (q, _) in zip(seen, sizes)]
                                     if left_chunks == 2 else seen)
    with torch.no_grad():
        full = encoder(feats, torch.full((3,), feats.size(1)), CHUNK, left_chunks)[0]
    torch.testing.assert_close(step.forward_chunk_by_chunk(feats), full, atol=1e-4, rtol=0)


def test_export_streaming_command(exp_dirs, synth_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(exp_dirs["conformer"]), "--out", str(out), "--streaming",
                 "--chunk-size", "8", "--left-chunks", "1"]) == 0
    printed = capsys.readouterr().out
    assert "encoder_chunk" in printed
    assert json.loads((out / "model.json").read_text())["streaming"]["chunk_size"] == 8
    assert main([str(exp_dirs["transformer"]), "--out", str(out)]) == 0  # no stale step
    assert not (out / "encoder_chunk.onnx").exists()
    assert ExportedModel.load(out).encoder_chunk is None
    offline = _experiment(tmp_path / "offline", synth_dir / "train.jsonl", causal=False)
    refused = [[str(exp_dirs["conformer"]), "--out", str(tmp_path / "a"), "--chunk-size", "4"],
               [str(offline), "--out", str(tmp_path / "b"), "--streaming"],
               [str(exp_dirs["conformer"]), "--out", str(tmp_path / "c"), "--streaming",
                "--chunk-size", "0"]]
    for argv in refused:
        assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "asrkit export: --chunk-size: only with --streaming"
    assert err[1].startswith("asrkit export: --streaming: encoder.causal:")
    assert err[2].startswith("asrkit export: --streaming: chunk_size: must be >= 1")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_torchscript_step_without_left_context(exp_dirs, tmp_path):
    """left_chunks 0: every chunk sees itself only (the caches keep no frames)."""
    report = export_model(exp_dirs["conformer"], tmp_path / "ts", "torchscript", chunk_size=3,
                          left_chunks=0)
    assert report.max_abs_diff["encoder_chunk"] < 1e-4
    exp = load_experiment(exp_dirs["conformer"])
    step = ExportedModel.load(tmp_path / "ts").encoder_chunk
    feats = torch.randn(1, 100, exp.extractor.num_mel_bins,
                        generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        full = exp.model.encoder(feats, torch.tensor([100]), 3, 0)[0]
    torch.testing.assert_close(step.forward_chunk_by_chunk(feats), full, atol=1e-4, rtol=0)
    # shorter than one encoder frame: no frames, as the eager run_chunk_by_chunk gives
    assert step.forward_chunk_by_chunk(feats[:, :6]).shape == (1, 0, full.size(2))


CONFORMER = ("encoder=conformer", "encoder.d_model=32", "encoder.num_heads=2",
             "encoder.ffn_dim=64", "encoder.num_layers=2", "encoder.kernel_size=7")


@pytest.mark.parametrize("chunk_options", [("encoder.chunk_size=80",),
                                           ("encoder.chunk_size=16", "encoder.left_chunks=1")])
def test_a_static_chunk_model_exports_its_chunk_mask(synth_dir, tmp_path, chunk_options):
    """A model trained with a static chunk decodes with its chunk mask, offline too. The
    export traces utterances of at most 74 encoder frames: a chunk of 80 is full context
    there, which the graph must not keep for longer inputs; a left-context limit must
    export at all (ONNX has no in-place and)."""
    exp_dir = _make_experiment(tmp_path / "exp", synth_dir / "train.jsonl",
                               extra=(*CONFORMER, *chunk_options))
    export_model(exp_dir, tmp_path / "out", "onnx", "avg_2.pt")
    model = load_experiment(exp_dir, "avg_2.pt").model.eval()
    exported = ExportedModel.load(tmp_path / "out")
    feats = torch.randn(2, 900, 80, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([900, 400])
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lengths)
        full, _ = model.encode(feats, lengths, chunk_size=0)
    x_enc, x_lens = exported.encode(feats, lengths)
    assert torch.equal(x_lens, enc_lens) and enc_lens.tolist() == [224, 99]
    valid = torch.arange(224) < enc_lens[:, None]
    assert (x_enc - enc)[valid].abs().max() < 1e-4
    assert (full - enc)[valid].abs().max() > 1e-2  # the chunk mask does change the output
