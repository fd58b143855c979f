"""A checkpoint or experiment directory cannot make asrkit call code: every `_target_` of a
config read back from a file must be an asrkit building block, checked before anything is
imported or called. Each crafted file below names something that would write or create a
file; the test asserts that the file or directory it targets is untouched."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from asrkit.bin.compare import main as compare
from asrkit.bin.decode import main as decode
from asrkit.models.checkpoint import load_model
from asrkit.models.trusted_targets import BUILDING_BLOCKS, UntrustedTargetError, check_trusted


def _craft(exp_dir, section: str, payload: dict) -> None:
    """Replace a section of the experiment's avg_2.pt config with ``payload``."""
    path = exp_dir / "avg_2.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["config"][section] = payload
    torch.save(checkpoint, path)


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


def _payloads(victim, tmp_path):
    return {
        "open for writing": ("encoder", {"_target_": "builtins.open", "file": str(victim),
                                         "mode": "w"}),
        "copy over": ("encoder", {"_target_": "shutil.copyfile", "src": "/etc/hostname",
                                  "dst": str(tmp_path / "planted.txt")}),
        "make a directory": ("decoder", {"_target_": "os.makedirs",
                                         "name": str(tmp_path / "made")}),
        "a target inside an allowed section": ("model", {
            "_target_": "asrkit.models.asr_model.ASRModel",
            "ctc_weight": {"_target_": "builtins.open", "file": str(victim), "mode": "w"}}),
        "a name under asrkit that is no building block": ("encoder", {
            "_target_": "asrkit.models.encoders.conformer.torch.save", "obj": 1,
            "f": str(victim)}),
        "hydra's positional arguments": ("encoder", {
            "_target_": "asrkit.models.encoders.conformer.ConformerEncoder",
            "_args_": [{"_target_": "builtins.open", "file": str(victim), "mode": "w"}]}),
        "a target made by an interpolation": ("encoder", {
            "_target_": "asrkit.models.encoders.conformer.ConformerEncoder",
            "activation": f"${{oc.create:{{_target_: os.makedirs, name: '{tmp_path / 'made'}'}}}}"}),
    }


@pytest.mark.parametrize("case", ["open for writing", "copy over", "make a directory",
                                  "a target inside an allowed section",
                                  "a name under asrkit that is no building block",
                                  "hydra's positional arguments",
                                  "a target made by an interpolation"])
def test_decode_refuses_a_checkpoint_that_names_code(make_experiment, synth_dir, tmp_path,
                                                      victim, capsys, case):
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    section, payload = _payloads(victim, tmp_path)[case]
    _craft(exp, section, payload)
    status = decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                     f"test_sets=[{synth_dir / 'test.jsonl'}]"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(exp / "avg_2.pt") in err
    assert any(reason in err for reason in ("not an asrkit building block", ("holds an "
                                            "interpolation"), "not allowed in a stored model"))
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "planted.txt").exists() and not (tmp_path / "made").exists()


def test_compare_refuses_a_crafted_experiment(make_experiment, synth_dir, tmp_path, victim,
                                              capsys):
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                   f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0
    _craft(exp, "encoder", {"_target_": "builtins.open", "file": str(victim), "mode": "w"})
    capsys.readouterr()
    assert compare([str(exp)]) == 2
    err = capsys.readouterr().err
    assert "'builtins.open', which is not an asrkit building block" in err
    assert victim.read_text() == "keep me"


OWN_ENCODER = '''
from asrkit.models.encoders.transformer import TransformerEncoder


class MyEncoder(TransformerEncoder):
    """A user's own encoder (here: the Transformer under another name)."""
'''


def test_a_users_own_module_loads_only_when_trusted(make_experiment, synth_dir, tmp_path,
                                                    monkeypatch):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_encoders.py").write_text(OWN_ENCODER)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    checkpoint = torch.load(exp / "avg_2.pt", weights_only=True)
    checkpoint["config"]["encoder"]["_target_"] = "my_encoders.MyEncoder"
    torch.save(checkpoint, exp / "avg_2.pt")
    sys.modules.pop("my_encoders", None)
    with pytest.raises(UntrustedTargetError, match="'my_encoders.MyEncoder'") as refused:
        load_model(exp / "avg_2.pt")
    assert "trusted_modules=[...] in Python" in str(refused.value)  # load_model's keyword
    assert "my_encoders" not in sys.modules  # refused before anything was imported
    model, _ = load_model(exp / "avg_2.pt", trusted_modules=["my_encoders"])
    assert type(model.encoder).__name__ == "MyEncoder"
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                   "trust_modules=[my_encoders]", f"test_sets=[{synth_dir / 'test.jsonl'}]"]) == 0


def test_trust_is_by_module_not_by_prefix(tmp_path, monkeypatch):
    """A trusted module's own classes and its submodules' pass; a name with the module's
    name as a prefix, or something the module merely imports (``my_encoders.os``), does
    not."""
    package = tmp_path / "code" / "my_encoders"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import os\n")
    (package / "sub.py").write_text(OWN_ENCODER)
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    for name in [n for n in sys.modules if n.startswith("my_encoders")]:
        monkeypatch.delitem(sys.modules, name)
    # a file naming a trusted class and something untrusted: refused before the trusted
    # module is imported for it
    with pytest.raises(UntrustedTargetError, match="'builtins.open', which is not"):
        check_trusted({"encoder": {"_target_": "my_encoders.sub.MyEncoder"},
                       "decoder": {"_target_": "builtins.open"}}, "x.pt", ["my_encoders"])
    assert not any(name.startswith("my_encoders") for name in sys.modules)
    for target, message in [("my_encodersX.Evil", "'my_encodersX.Evil', which is not"),
                            ("my_encoders.os.makedirs", ("'my_encoders.os.makedirs', which lies "
                                                         "under a trusted module but is "
                                                         "defined outside it")),
                            ("my_encoders.nothing.Here", ("^x.pt: encoder._target_ names "
                                                         "'my_encoders.nothing.Here', which "
                                                         "cannot be imported"))]:
        with pytest.raises(UntrustedTargetError, match=message):
            check_trusted({"encoder": {"_target_": target}}, "x.pt", ["my_encoders"])
    check_trusted({"encoder": {"_target_": "my_encoders.sub.MyEncoder"}}, "x.pt",
                  ["my_encoders"])


def test_every_model_option_in_conf_is_a_building_block():
    from omegaconf import OmegaConf

    from asrkit.config import config_dir
    from asrkit.models.trusted_targets import iter_targets

    for group in ("encoder", "decoder", "transducer", "model"):
        for path in sorted((config_dir() / group).glob("*.yaml")):
            node = OmegaConf.to_container(OmegaConf.load(path))
            for _, target in iter_targets(node):
                assert target in BUILDING_BLOCKS, (path, target)


def test_the_manifest_name_cannot_leave_the_decode_directory(make_experiment, synth_dir,
                                                              tmp_path):
    """A test set called `...jsonl` (stem `..`) is named safely, inside decode/."""
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    sneaky = tmp_path / "sets" / "...jsonl"
    sneaky.parent.mkdir()
    sneaky.write_text((synth_dir / "test.jsonl").read_text())
    assert decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                   f"test_sets=[{sneaky}]"]) == 0
    results = list((exp / "decode").rglob("wer.json"))
    assert len(results) == 1 and results[0].parent.parent.name == "set"
    assert json.loads(results[0].read_text())["set"] == "set"
    assert not (exp / "decode" / "avg_2" / "ctc_greedy").exists()


def _malformed(checkpoint: dict, case: str) -> None:
    config = checkpoint["config"]
    if case == "a non-string key":
        config["encoder"][3] = "x"
    elif case == "a section that is a string":
        config["tokenizer"] = "x"
    elif case == "no data section":
        del config["data"]
    elif case == "a data section that is a list":
        config["data"] = [1, 2]
    elif case == "weights that are a list":
        checkpoint["model"] = [1, 2]
    elif case == "a weight of another shape":
        name = next(iter(checkpoint["model"]))
        checkpoint["model"][name] = torch.zeros(3, 1, 7)


@pytest.mark.parametrize("case", ["a non-string key", "a section that is a string",
                                  "no data section", "a data section that is a list",
                                  "weights that are a list", "a weight of another shape"])
def test_a_malformed_checkpoint_is_one_line_naming_it(make_experiment, synth_dir, tmp_path,
                                                      capsys, case):
    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    checkpoint = torch.load(exp / "avg_2.pt", weights_only=True)
    _malformed(checkpoint, case)
    torch.save(checkpoint, exp / "avg_2.pt")
    status = decode([f"exp_dir={exp}", "checkpoint=avg_2.pt", "methods=[ctc_greedy]",
                     f"test_sets=[{synth_dir / 'test.jsonl'}]"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"asrkit decode: {exp / 'avg_2.pt'}: "), err


def test_a_malformed_checkpoint_is_exit_1_for_every_command(make_experiment, synth_dir,
                                                            tmp_path, capsys, corpus):
    """The same file, by transcribe (offline and streaming), export and init_from: exit 1
    (its content is at fault, as with corrupt bytes), one line naming it."""
    from asrkit.bin.export import main as export
    from asrkit.bin.transcribe import main as transcribe
    from asrkit.training.run import run_training

    exp = make_experiment(tmp_path / "exp", synth_dir / "train.jsonl")
    checkpoint = torch.load(exp / "avg_2.pt", weights_only=True)
    _malformed(checkpoint, "a section that is a string")
    torch.save(checkpoint, exp / "avg_2.pt")
    audio = next((synth_dir / "wav" / "test").glob("*.wav"))
    named = f"{exp / 'avg_2.pt'}: not an asrkit checkpoint (config.tokenizer is a str"
    for command, args in [
            (transcribe, [str(exp), str(audio), "--checkpoint", "avg_2.pt"]),
            (transcribe, [str(exp), str(audio), "--checkpoint", "avg_2.pt", "--streaming"]),
            (export, [str(exp), "--checkpoint", "avg_2.pt", "--out", str(tmp_path / "x")])]:
        assert command(args) == 1, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, err
    assert run_training(corpus.config(tmp_path / "b", f"trainer.init_from={exp / 'avg_2.pt'}",
                                      "trainer.max_epochs=1")) == 1
    assert named in capsys.readouterr().err
