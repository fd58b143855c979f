import json

from asrkit.bin.score import build_parser, main
from asrkit.scoring.decode_dir import write_decode_result
from asrkit.scoring.normalize import TextNormalizer


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
    assert result["wer"] == 200 / 3  # unrounded: 8.885 % rounded to 4 places showed as 8.88
    assert "Scores: (#C #S #D #I) 2 1 0 1" in (tmp_path / "errors.txt").read_text()


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    args = _files(tmp_path, {"u1": "a"}, {"u2": "a"})
    assert main(args) == 2
    assert capsys.readouterr().err == (f"asrkit score: {args[3]} against {args[1]}: 1 hypothesis "
                                       "id(s) have no reference, e.g. 'u2'\n")
    assert main(["--ref", str(tmp_path / "none.txt"), "--hyp", str(tmp_path / "hyp.txt")]) == 2
    assert "none.txt: not found" in capsys.readouterr().err
    assert main([*args[:2], "--hyp", str(tmp_path / "ref.txt"), "--normalize", "loud"]) == 2
    capsys.readouterr()
    args = _files(tmp_path, {"u1": "a"}, {"u1": "a"})
    assert main([*args, "--errors", str(tmp_path / "no_dir" / "errors.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asrkit score: ") and "no_dir/errors.txt" in err and err.count("\n") == 1
    (tmp_path / "ref.txt").write_text("")
    assert main(args) == 2
    assert capsys.readouterr().err == f"asrkit score: {tmp_path / 'ref.txt'}: no reference utterances\n"


def test_json_is_valid_when_the_rate_is_undefined(tmp_path, capsys):
    """No reference words but hypothesis words: the rates are null (not `Infinity`)."""
    args = _files(tmp_path, {"u1": ""}, {"u1": "noise words"})
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out

    def reject(constant):
        raise ValueError(f"not JSON: {constant}")

    result = json.loads(out, parse_constant=reject)
    assert result["wer"] is None and result["cer"] is None
    assert (result["ins"], result["ref_words"]) == (2, 0)
    assert "null" in " ".join(build_parser().format_help().split())
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("WER inf % [ 2 / 0, 0 sub, 0 del, 2 ins ]")


def test_wer_json_of_a_decode_is_valid_json_too(tmp_path):
    summary = write_decode_result(tmp_path, {"u1": ""}, {"u1": "x"}, TextNormalizer())
    assert summary["wer"] == float("inf")
    text = (tmp_path / "wer.json").read_text()
    assert '"wer": null' in text and "Infinity" not in text
