import json

from asrkit.bin.score import main


def _files(tmp_path, refs, hyps):
    (tmp_path / "ref.txt").write_text("".join(f"{k} {v}\n" for k, v in refs.items()))
    (tmp_path / "hyp.txt").write_text("".join(f"{k} {v}\n" for k, v in hyps.items()))
    return ["--ref", str(tmp_path / "ref.txt"), "--hyp", str(tmp_path / "hyp.txt")]


def test_score_prints_wer_cer_and_normalisation(tmp_path, capsys):
    args = _files(tmp_path, {"u1": "Hello World", "u2": "good day"}, {"u1": "hello world"})
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "WER 100.00 % [ 4 / 4, 2 sub, 2 del, 0 ins ] 2 utterances"
    assert out[1].startswith("CER ")
    assert out[2] == "normalisation: none"
    assert "1 reference utterance(s) had no hypothesis" in out[3]
    assert main([*args, "--normalize", "lower", "--cer"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "CER 41.18 % [ 7 / 17, 0 sub, 7 del, 0 ins ] 2 utterances"
    assert out[2] == "normalisation: case lower"


def test_json_has_the_wer_json_keys(tmp_path, capsys):
    args = _files(tmp_path, {"u1": "a b c"}, {"u1": "a x c d"})
    assert main([*args, "--json", "--errors", str(tmp_path / "errors.txt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"wer", "cer", "sub", "del", "ins", "ref_words", "utts", "rtf"} <= set(result)
    assert (result["sub"], result["ins"], result["ref_words"]) == (1, 1, 3)
    assert result["wer"] == round(200 / 3, 4)
    assert "Scores: (#C #S #D #I) 2 1 0 1" in (tmp_path / "errors.txt").read_text()


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    args = _files(tmp_path, {"u1": "a"}, {"u2": "a"})
    assert main(args) == 2
    assert "have no reference, e.g. 'u2'" in capsys.readouterr().err
    assert main(["--ref", str(tmp_path / "none.txt"), "--hyp", str(tmp_path / "hyp.txt")]) == 2
    assert "none.txt: not found" in capsys.readouterr().err
    assert main([*args[:2], "--hyp", str(tmp_path / "ref.txt"), "--normalize", "loud"]) == 2
