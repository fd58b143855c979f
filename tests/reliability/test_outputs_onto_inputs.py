"""Commands refuse an output onto one of their inputs (or onto a file of another kind),
and nonsense numbers, in one line, before anything is written."""

from __future__ import annotations

import torch

from asrkit.bin.score import main as score_main


def test_score_errors_onto_an_input_is_refused(tmp_path, capsys):
    ref, hyp = tmp_path / "ref.txt", tmp_path / "hyp.txt"
    ref.write_text("u1 a b c\n")
    hyp.write_text("u1 a x c\n")
    for target in (ref, hyp):
        assert score_main(["--ref", str(ref), "--hyp", str(hyp), "--errors", str(target)]) == 2
        assert capsys.readouterr().err == (f"asrkit score: --errors {target}: is one of the "
                                           "files scored\n")
    assert ref.read_text() == "u1 a b c\n" and hyp.read_text() == "u1 a x c\n"


def test_average_out_onto_a_file_that_is_not_a_model_is_refused(tmp_path):
    import pytest

    from asrkit.training.average import average_experiment

    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text('{"id": "u1"}\n')
    with pytest.raises(ValueError, match=rf"^--out: {manifest} exists and is not a model "):
        average_experiment(exp, 1, out=manifest)
    assert manifest.read_text() == '{"id": "u1"}\n'
    model = tmp_path / "old_avg.pt"
    torch.save({"model": {}}, model)
    with pytest.raises(OSError) as raised:  # an old average may be replaced: past the check,
        average_experiment(exp, 1, out=model)  # this experiment has no checkpoints
    assert "--out" not in str(raised.value)


def test_nonsense_numbers_are_refused(tmp_path):
    import pytest

    from asrkit.inference.windows import WindowSettings

    for value in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="window settings must be finite"):
            WindowSettings(window=value)
        with pytest.raises(ValueError, match="window settings must be finite"):
            WindowSettings(overlap=value)
