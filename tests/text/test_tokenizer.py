import json

import pytest

from asrkit.bin.tokenizer import main as tokenizer_main
from asrkit.data.manifest import Utterance, write_manifest
from asrkit.text.base import BLANK_ID, SOS_EOS_ID, UNK_ID, TokenizerError
from asrkit.text.registry import load_tokenizer, train_tokenizer

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a small red bird sings in the old tree",
    "seven green boxes stand near the river bank",
    "my brother reads the morning paper every day",
] * 10


@pytest.mark.parametrize("kind,size", [("bpe", 40), ("unigram", 40), ("char", None)])
def test_round_trip_and_fixed_special_ids(tmp_path, kind, size):
    tok = train_tokenizer(TEXTS, kind, size)
    tok.save(tmp_path / kind)
    loaded = load_tokenizer(tmp_path / kind)
    assert loaded.type == kind
    assert loaded.units[:3] == ["<blank>", "<unk>", "<sos/eos>"]
    if size is not None:
        assert loaded.vocab_size == size
    for text in TEXTS[:4]:
        ids = loaded.encode(text)
        assert ids == tok.encode(text)
        assert min(ids) >= 3, "specials never come out of encode"
        assert loaded.decode(ids) == text
    assert loaded.decode([SOS_EOS_ID, *loaded.encode("the dog"), BLANK_ID, SOS_EOS_ID]) == "the dog"
    units = (tmp_path / kind / "units.txt").read_text().splitlines()
    assert len(units) == loaded.vocab_size and units[0] == "<blank> 0" and units[2] == "<sos/eos> 2"
    meta = json.loads((tmp_path / kind / "tokenizer.json").read_text())
    assert meta["vocab_size"] == loaded.vocab_size and meta["sos_eos_id"] == 2


def test_char_tokenizer_maps_unseen_to_unk_and_caps_vocab():
    tok = train_tokenizer(["aab", "ab c"], "char", None)
    # counts: a 3, b 2, c 1, space 1 -> order a, b, c, ▁ (ties by character)
    assert tok.units[3:] == ["a", "b", "c", "▁"]
    assert tok.encode("ab z") == [3, 4, 6, UNK_ID]
    capped = train_tokenizer(["aab", "ab c"], "char", 5)
    assert capped.units == ["<blank>", "<unk>", "<sos/eos>", "a", "b"]
    assert capped.encode("abc") == [3, 4, UNK_ID]


def test_mandarin_chars_without_spaces():
    tok = train_tokenizer(["今天天气很好", "天气不错"], "char", None)
    assert tok.decode(tok.encode("天气很好")) == "天气很好"
    assert "▁" not in tok.units


def test_too_large_vocab_names_the_option():
    with pytest.raises(TokenizerError, match="--vocab-size 5000"):
        train_tokenizer(TEXTS, "bpe", 5000)


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_too_small_vocab_names_the_size_it_needs(kind):
    needed = len(set("".join(TEXTS))) + 3  # the characters (space as ▁) and the specials
    with pytest.raises(TokenizerError) as small:
        train_tokenizer(TEXTS, kind, 10)
    assert str(small.value) == (f"--vocab-size 10 is less than the {needed} units a {kind} "
                                "tokenizer of this text needs (one per distinct character, "
                                f"and the special units): use --vocab-size {needed} or more")
    assert train_tokenizer(TEXTS, kind, needed).vocab_size == needed
    for size in (0, 3):
        with pytest.raises(TokenizerError, match=f"^--vocab-size {size} leaves no room for "):
            train_tokenizer(TEXTS, kind, size)


def test_a_char_tokenizer_saved_over_word_pieces_leaves_no_spm_model(tmp_path):
    train_tokenizer(TEXTS, "bpe", 40).save(tmp_path)
    assert (tmp_path / "spm.model").is_file()
    train_tokenizer(TEXTS, "char", None).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "units.txt"]
    assert load_tokenizer(tmp_path).type == "char"
    train_tokenizer(TEXTS, "unigram", 40).save(tmp_path)  # and back
    assert load_tokenizer(tmp_path).type == "unigram" and (tmp_path / "spm.model").is_file()


def test_load_missing_dir_names_the_file(tmp_path):
    with pytest.raises(TokenizerError, match="tokenizer.json: not found"):
        load_tokenizer(tmp_path / "nope")


def test_cli_trains_from_manifest(tmp_path, capsys):
    manifest = tmp_path / "train.jsonl"
    write_manifest(manifest, [Utterance(f"u{i}", "a.wav", 1.0, t, "s") for i, t in enumerate(TEXTS)])
    rc = tokenizer_main(["--manifest", str(manifest), "--type", "bpe", "--vocab-size", "40",
                         "--out", str(tmp_path / "bpe40")])
    assert rc == 0
    assert "bpe tokenizer with 40 units" in capsys.readouterr().out
    assert load_tokenizer(tmp_path / "bpe40").vocab_size == 40


def test_blank_texts_and_an_out_that_is_a_file_are_one_line_errors(tmp_path, capsys):
    manifest = tmp_path / "blank.jsonl"
    write_manifest(manifest, [Utterance(f"u{i}", "a.wav", 1.0, t, "s")
                              for i, t in enumerate(["", "  "])])
    for kind in ("char", "bpe"):
        assert tokenizer_main(["--manifest", str(manifest), "--type", kind, "--vocab-size",
                               "10", "--out", str(tmp_path / kind)]) == 2
        assert capsys.readouterr().err == ("asrkit tokenizer: no training text: all 2 "
                                           "utterances have an empty text\n")
    write_manifest(manifest, [Utterance(f"u{i}", "a.wav", 1.0, t, "s") for i, t in enumerate(TEXTS)])
    (tmp_path / "afile").write_text("kept")
    assert tokenizer_main(["--manifest", str(manifest), "--type", "char",
                           "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == (f"asrkit tokenizer: --out {tmp_path / 'afile'} is a "
                                       f"file, not a directory\n")
    assert tokenizer_main(["--manifest", str(manifest), "--type", "char",
                           "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert capsys.readouterr().err == (f"asrkit tokenizer: --out {tmp_path / 'afile' / 'sub'} "
                                       f"would be inside {tmp_path / 'afile'}, which is a file\n")
    assert (tmp_path / "afile").read_text() == "kept"


def test_word_pieces_normalise_to_nfkc_as_documented():
    tokenizer = train_tokenizer(TEXTS + ["第２０１５号 ﬁle"], "bpe", 60)
    assert tokenizer.decode(tokenizer.encode("第２０１５号 ﬁle")) == "第2015号 file"
    char = train_tokenizer(TEXTS + ["第２０１５号 ﬁle"], "char", None)
    assert char.decode(char.encode("第２０１５号 ﬁle")) == "第２０１５号 ﬁle"


def test_cli_missing_manifest_is_one_line_error(tmp_path, capsys):
    rc = tokenizer_main(["--manifest", str(tmp_path / "missing.jsonl"), "--type", "char",
                         "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.jsonl: manifest not found" in err


def test_cli_non_utf8_manifest_is_one_line_error(tmp_path, capsys):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_bytes(b'{"id": "u1", "audio": "a.wav", "duration": 1.0, "text": "\xff", "speaker": "s"}\n')
    rc = tokenizer_main(["--manifest", str(manifest), "--type", "char", "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith(f"asrkit tokenizer: {manifest}:1: not UTF-8 text (byte 0xff")
    assert err.count("\n") == 1
