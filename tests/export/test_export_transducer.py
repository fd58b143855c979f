"""Exported transducers equal the eager model: projected frames, prediction outputs and the
joint's log-probabilities within 1e-4 (fp32) on a batch of several lengths, computed here
independently of the export's own check (the whole lattice at once, the prediction network
teacher-forced); identical hypotheses and emission frames from the searches; and a trained
transducer transcribes alike, exported or not."""

from __future__ import annotations

import json

import pytest
import torch

from asrkit.bin.export import main
from asrkit.config import ConfigError
from asrkit.decoding.experiment import load_experiment
from asrkit.decoding.transducer_beam import transducer_beam_search
from asrkit.decoding.transducer_greedy import transducer_greedy_search
from asrkit.decoding.transducer_modified_beam import transducer_modified_beam_search
from asrkit.inference.export import export_model
from asrkit.inference.exported_model import ExportedModel
from asrkit.inference.transcriber import Transcriber
from asrkit.models.mask import padding_mask
from tests.conftest import _make_experiment

SMALL = ("transducer.prediction_dim=32", "transducer.joint_dim=32")
EXPERIMENTS = {"alone": ("model=transducer", "transducer=lstm", "transducer.prediction_layers=2",
                         *SMALL),
               "hybrid": ("transducer=stateless", "model.transducer_weight=0.5", *SMALL)}
SEARCHES = {
    "greedy": lambda head, enc, lens: transducer_greedy_search(head, enc, lens, 4,
                                                               return_frames=True),
    "modified_beam": lambda head, enc, lens: transducer_modified_beam_search(
        head, enc, lens, 4, return_frames=True),
    "beam": lambda head, enc, lens: transducer_beam_search(head, enc, lens, 4,
                                                           return_frames=True),
}


@pytest.fixture(scope="module")
def exps(synth_dir, tmp_path_factory):
    """Tiny random transducers, their joint sharpened (peaky, as trained ones: clear winners)."""
    root = tmp_path_factory.mktemp("transducers")
    made = {}
    for name, extra in EXPERIMENTS.items():
        exp = _make_experiment(root / name, synth_dir / "train.jsonl", extra=extra)
        checkpoint = torch.load(exp / "avg_2.pt", weights_only=False)
        for key in ("transducer.joiner.output.weight", "transducer.joiner.output.bias"):
            checkpoint["model"][key] *= 4.0
        torch.save(checkpoint, exp / "avg_2.pt")
        made[name] = exp
    return made


@pytest.fixture(scope="module")
def exported(exps, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported_transducers")
    return {(name, runtime): export_model(exp, out / f"{name}_{runtime}", runtime,
                                          "avg_2.pt").out_dir
            for name, exp in exps.items() for runtime in ("onnx", "torchscript")}


def _batch(generator):
    lengths = torch.tensor([523, 400, 161, 97, 33])  # other lengths and batch than traced
    feats = torch.randn(5, 523, 80, generator=generator)
    return feats, lengths


@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["alone", "hybrid"])
def test_graphs_equal_the_eager_model(exps, exported, name, runtime):
    model = load_experiment(exps[name], "avg_2.pt").model
    graphs = ExportedModel.load(exported[name, runtime])
    head, x_head = model.transducer, graphs.transducer
    generator = torch.Generator().manual_seed(7)
    feats, lengths = _batch(generator)
    tokens = torch.randint(1, model.vocab_size, (5, 8), generator=generator)
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lengths)
        enc_proj = head.project_encoder(enc)  # (B, T', J)
        pred = head.joiner.project_prediction(head.prediction(tokens))  # (B, U + 1, J)
        lattice = head.joint(enc_proj[:, :, None], pred[:, None])  # (B, T', U + 1, V)
    x_enc, x_lens = graphs.encode(feats, lengths)
    assert torch.equal(x_lens, enc_lens)
    valid = padding_mask(enc_lens, enc.size(1))
    x_proj = x_head.project_encoder(x_enc)
    assert (x_proj - enc_proj)[valid].abs().max() < 1e-4
    start = torch.full((5,), x_head.blank_id)
    x_pred, state = x_head.predict(start, x_head.initial_state(5, "cpu"))
    steps = [x_pred]
    for u in range(tokens.size(1)):
        x_pred, state = x_head.predict(tokens[:, u], state)
        steps.append(x_pred)
    x_pred = torch.stack(steps, dim=1)  # (B, U + 1, J)
    assert (x_pred - pred).abs().max() < 1e-4
    x_lattice = x_head.joint(x_proj[:, :, None], x_pred[:, None])
    assert x_lattice.shape == lattice.shape
    assert (x_lattice - lattice)[valid].abs().max() < 1e-4
    if name == "hybrid":
        with torch.no_grad():
            ctc = model.ctc_log_probs(enc)
        assert (graphs.ctc_log_probs(x_enc) - ctc)[valid].abs().max() < 1e-4
    info = json.loads((exported[name, runtime] / "model.json").read_text())
    assert info["family"] == {"alone": "transducer", "hybrid": "transducer_ctc_attention"}[name]
    assert {"encoder", "encoder_projection", "prediction", "joiner"} <= set(info["graphs"])
    assert all(v < 1e-4 for v in info["check"]["max_abs_diff"].values())


@pytest.mark.parametrize("search", list(SEARCHES))
@pytest.mark.parametrize("name", ["alone", "hybrid"])
def test_searches_find_the_same_hypotheses(exps, exported, name, search):
    model = load_experiment(exps[name], "avg_2.pt").model
    graphs = ExportedModel.load(exported[name, "onnx"])
    feats, lengths = _batch(torch.Generator().manual_seed(11))
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lengths)
        eager, eager_frames = SEARCHES[search](model.transducer, enc, enc_lens)
    x_enc, x_lens = graphs.encode(feats, lengths)
    hyps, frames = SEARCHES[search](graphs.transducer, x_enc, x_lens)
    # the same hypotheses, scores and label frames; hypotheses of equal score (a random
    # model gives some exactly equal ones) may come in either order
    for ours, ours_frames, ref, ref_frames in zip(hyps, frames, eager, eager_frames,
                                                  strict=True):
        assert [h.score for h in ours] == pytest.approx([h.score for h in ref], abs=1e-3)
        found = {h.tokens: (h.score, f) for h, f in zip(ours, ours_frames, strict=True)}
        expected = {h.tokens: (h.score, f) for h, f in zip(ref, ref_frames, strict=True)}
        assert found.keys() == expected.keys()
        for tokens, (score, label_frames) in expected.items():
            assert found[tokens][0] == pytest.approx(score, abs=1e-3)
            assert found[tokens][1] == label_frames
    assert sum(len(n[0].tokens) for n in eager) > 10


def test_trained_transducer_transcribes_alike_exported(trained, trained_transducer, tmp_path):
    paths = [u.audio for u in trained.utterances]
    for exp, runtime, family, method in [
            (trained_transducer.alone, "onnx", "transducer", "transducer_modified_beam"),
            (trained_transducer.hybrid, "torchscript", "transducer_ctc", "transducer_greedy")]:
        out = tmp_path / f"{family}_{runtime}"
        assert main([str(exp), "--format", runtime, "--out", str(out)]) == 0
        info = json.loads((out / "model.json").read_text())
        assert info["family"] == family
        assert info["transducer"] == {"blank_id": 0, "state": [
            {"dtype": "int64", "shape": [1], "fill": 0.0}]}  # stateless: the last label
        eager = Transcriber.load(exp, method=method).transcribe(paths)
        graphs = Transcriber.load(out, method=method).transcribe(paths)
        assert [r.text for r in graphs] == [r.text for r in eager] == \
            [u.text for u in trained.utterances]
        for a, b in zip(eager, graphs):
            assert [(t.start, t.end) for t in a.tokens] == [(t.start, t.end) for t in b.tokens]
            assert [t.confidence for t in a.tokens] == pytest.approx(
                [t.confidence for t in b.tokens], abs=1e-4)


def test_exported_transducer_alone_refuses_ctc(exps, exported, tmp_path):
    graphs = ExportedModel.load(exported["alone", "onnx"])
    assert graphs.ctc is None and graphs.decoder is None
    with pytest.raises(RuntimeError, match="transducer alone"):
        graphs.ctc_log_probs(torch.zeros(1, 3, 32))
    with pytest.raises(ConfigError, match="'ctc_greedy' needs a CTC head"):
        Transcriber.load(exported["alone", "onnx"], method="ctc_greedy")
    # re-exporting a transducer alone where a hybrid was leaves none of the hybrid's graphs
    out = tmp_path / "reused"
    export_model(exps["hybrid"], out, "onnx", "avg_2.pt")
    assert (out / "ctc.onnx").is_file() and (out / "decoder.onnx").is_file()
    export_model(exps["alone"], out, "onnx", "avg_2.pt")
    assert sorted(p.name for p in out.glob("*.onnx")) == [
        "encoder.onnx", "encoder_projection.onnx", "joiner.onnx", "prediction.onnx"]
    info = json.loads((out / "model.json").read_text())
    del info["transducer"]["state"]
    (out / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="malformed"):
        ExportedModel.load(out)


def test_stateless_context_one_has_an_empty_state(synth_dir, tmp_path):
    """A stateless network over the last label alone keeps a (hyps, 0) state: exported and
    searched all the same."""
    exp = _make_experiment(tmp_path / "exp", synth_dir / "train.jsonl",
                           extra=("model=transducer", "transducer=stateless",
                                  "transducer.context_size=1", *SMALL))
    out = export_model(exp, tmp_path / "onnx", "onnx", "avg_2.pt").out_dir
    info = json.loads((out / "model.json").read_text())
    assert info["transducer"]["state"] == [{"dtype": "int64", "shape": [0], "fill": 0.0}]
    model, graphs = load_experiment(exp, "avg_2.pt").model, ExportedModel.load(out)
    feats, lengths = _batch(torch.Generator().manual_seed(5))
    with torch.no_grad():
        eager, _ = SEARCHES["modified_beam"](model.transducer, *model.encode(feats, lengths))
    hyps, _ = SEARCHES["modified_beam"](graphs.transducer, *graphs.encode(feats, lengths))
    assert [n[0].tokens for n in hyps] == [n[0].tokens for n in eager]
