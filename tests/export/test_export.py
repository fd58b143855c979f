"""Exported models equal the eager model: CTC log-probabilities and decoder scores within
1e-4 (fp32) on a batch of several lengths, and identical hypotheses when transcribing."""

from __future__ import annotations

import json

import pytest
import torch

from asrkit.bin.export import main
from asrkit.config import ConfigError
from asrkit.decoding.experiment import load_experiment
from asrkit.inference.export import export_model
from asrkit.inference.exported_model import ExportedModel
from asrkit.inference.transcriber import Transcriber
from asrkit.models.mask import padding_mask

CHECKPOINT = "avg_2.pt"  # the tiny experiment's model (it records no average)


@pytest.fixture(scope="module")
def exported(synth_exp, tmp_path_factory):
    """A random tiny CTC/attention experiment (tests/conftest.py) in both formats."""
    out = tmp_path_factory.mktemp("exported")
    return {runtime: export_model(synth_exp, out / runtime, runtime, CHECKPOINT).out_dir
            for runtime in ("onnx", "torchscript")}


@pytest.mark.parametrize("runtime", ["onnx", "torchscript"])
def test_outputs_equal_the_eager_model(synth_exp, exported, runtime):
    model = load_experiment(synth_exp, CHECKPOINT).model
    graphs = ExportedModel.load(exported[runtime])
    generator = torch.Generator().manual_seed(7)
    lengths = torch.tensor([523, 400, 161, 97, 33])  # other lengths and batch than traced
    feats = torch.randn(5, 523, 80, generator=generator)
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, lengths)
        ctc = model.ctc_log_probs(enc)
        hyps = [torch.randint(3, model.vocab_size, (n,), generator=generator).tolist()
                for n in (12, 1, 7, 0, 3)]
        scores = model.score_hypotheses(enc, enc_lens, hyps)
    x_enc, x_lens = graphs.encode(feats, lengths)
    assert torch.equal(x_lens, enc_lens)
    valid = padding_mask(enc_lens, enc.size(1))
    assert (graphs.ctc_log_probs(x_enc) - ctc)[valid].abs().max() < 1e-4
    assert (graphs.score_hypotheses(x_enc, x_lens, hyps) - scores).abs().max() < 1e-4
    nbest = [[hyps[0], hyps[0][:5], hyps[4]], [hyps[1]], [], [hyps[3], hyps[2]], [hyps[4]]]
    with torch.no_grad():  # the eager model scores prefix trees, the export row by row
        eager_nbest = model.score_nbest(enc, enc_lens, nbest)
    for per_pass in (1, 2, 32):
        for ours, eager in zip(graphs.score_nbest(x_enc, x_lens, nbest, hyps_per_pass=per_pass),
                               eager_nbest, strict=True):
            assert ours.shape == eager.shape
            assert torch.allclose(ours, eager, rtol=0, atol=1e-4)
    step, _ = graphs.decoder_step(torch.tensor([[2, 5, 6]] * 5), x_enc, valid)
    eager_step, _ = model.decoder_step(torch.tensor([[2, 5, 6]] * 5), enc, valid)
    assert (step - eager_step).abs().max() < 1e-4


@pytest.mark.parametrize("method", ["attention_rescoring", "joint", "ctc_prefix_beam"])
def test_random_model_hypotheses_are_identical(synth_exp, exported, synth_dir, method):
    audio = [line for line in (synth_dir / "train.jsonl").read_text().splitlines()][:6]
    paths = [synth_dir / json.loads(line)["audio"] for line in audio]
    eager = Transcriber.load(synth_exp, CHECKPOINT, method, ["beam=4"])
    onnx = Transcriber.load(exported["onnx"], method=method, search_overrides=["beam=4"])
    eager_texts = [r.text for r in eager.transcribe(paths)]
    assert [r.text for r in onnx.transcribe(paths)] == eager_texts
    assert any(eager_texts)


def test_trained_model_transcribes_alike_exported(trained, tmp_path):
    assert main([str(trained.exp_dir), "--format", "onnx", "--out", str(tmp_path / "x")]) == 0
    info = json.loads((tmp_path / "x" / "model.json").read_text())
    assert info["family"] == "ctc" and set(info["graphs"]) == {"encoder", "ctc"}
    assert info["check"]["max_abs_diff"]["ctc_log_probs"] < 1e-4
    assert info["graphs"]["encoder"]["inputs"][0]["shape"] == ["batch", "time", 40]
    paths = [u.audio for u in trained.utterances]
    eager = Transcriber.load(trained.exp_dir, method="ctc_prefix_beam").transcribe(paths)
    onnx = Transcriber.load(tmp_path / "x", method="ctc_prefix_beam").transcribe(paths)
    assert [r.text for r in onnx] == [r.text for r in eager] == \
        [u.text for u in trained.utterances]
    for a, b in zip(eager, onnx):
        assert [(w.start, w.end) for w in a.words] == [(w.start, w.end) for w in b.words]
    with pytest.raises(ConfigError, match=r"^precision: bf16 is for experiments; .* is an "
                                          r"exported model"):
        Transcriber.load(tmp_path / "x", precision="bf16")


def test_a_failed_export_leaves_the_earlier_one_as_it_was(synth_exp, exported, tmp_path,
                                                          monkeypatch):
    import shutil

    import asrkit.inference.export as export_module
    from asrkit.inference.export import ExportError

    out = tmp_path / "model"
    shutil.copytree(exported["onnx"], out)
    (out / "notes.txt").write_text("mine")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def failing_check(*args, **kwargs):
        raise ExportError("exported ctc_log_probs differ")

    monkeypatch.setattr(export_module, "check_export", failing_check)
    with pytest.raises(ExportError, match="differ"):
        export_model(synth_exp, out, "torchscript", CHECKPOINT)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(ExportError, match="differ"):  # nothing is left where nothing was
        export_model(synth_exp, tmp_path / "new", "onnx", CHECKPOINT)
    assert not (tmp_path / "new").exists()
    (out / ".partial-999999999").mkdir()  # an interrupted export's (no such process)
    monkeypatch.undo()
    report = export_model(synth_exp, out, "torchscript", CHECKPOINT)
    assert report.out_dir == out and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "model.json").read_text())["runtime"] == "torchscript"
    assert not list(out.glob("*.onnx")) and list(out.glob("*.pt"))
    assert ExportedModel.load(out).info.runtime == "torchscript"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert not list(out.glob(".partial-*"))


@pytest.mark.parametrize("features", [{"foo": 1}, {"sample_rate": "sixteen"}])
def test_malformed_features_in_model_json_are_named(exported, tmp_path, features):
    import shutil

    out = tmp_path / "model"
    shutil.copytree(exported["onnx"], out)
    info = json.loads((out / "model.json").read_text())
    info["features"].update(features)
    (out / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"^{out / 'model.json'}: malformed features "):
        Transcriber.load(out)


def test_export_refuses_what_it_should(synth_exp, exported, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main([str(synth_exp), "--out", str(busy), "--checkpoint", CHECKPOINT]) == 2
    assert "is not empty and holds no exported model" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "y")]) == 2
    (tmp_path / "afile").write_text("kept")
    assert main([str(synth_exp), "--out", str(tmp_path / "afile" / "sub"), "--checkpoint",
                 CHECKPOINT]) == 2
    assert capsys.readouterr().err.endswith(
        f"--out {tmp_path / 'afile' / 'sub'} would be inside {tmp_path / 'afile'}, which is "
        f"a file\n")
    # a stored config naming code outside asrkit is refused when the export is loaded
    info_file = exported["onnx"] / "model.json"
    info = json.loads(info_file.read_text())
    info["config"]["encoder"]["_target_"] = "builtins.exec"
    bad = tmp_path / "bad"
    bad.mkdir()
    for item in exported["onnx"].iterdir():
        if item.is_file():
            (bad / item.name).write_bytes(item.read_bytes())
    (bad / "tokenizer").symlink_to(exported["onnx"] / "tokenizer")
    (bad / "model.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="builtins.exec"):
        ExportedModel.load(bad)
