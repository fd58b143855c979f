import random

import pytest

from asrkit.scoring.kaldi_text import read_text, write_text
from asrkit.scoring.normalize import TextNormalizer
from asrkit.scoring.wer import format_alignments, format_errors_file, score_texts


def edit_distance(ref: list[str], hyp: list[str], sub: int = 1, indel: int = 1) -> int:
    """Textbook weighted edit distance (unit costs: Levenshtein)."""
    row = [indel * j for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], indel * i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + indel, row[j - 1] + indel,
                                           previous + sub * (r != h))
    return row[-1]


def test_counts_are_a_cheapest_alignment_under_sclites_weights():
    """Each utterance's alignment costs the minimum 4·S + 3·(D + I) (sclite's weights); its
    errors are never fewer than the Levenshtein distance, and rarely more; the totals add
    up the utterances."""
    rng = random.Random(1)
    words = ["a", "b", "c", "d", "e"]
    refs, hyps = {}, {}
    for n in range(300):
        refs[f"u{n}"] = " ".join(rng.choice(words[:3]) for _ in range(rng.randint(0, 8)))
        hyps[f"u{n}"] = " ".join(rng.choice(words) for _ in range(rng.randint(0, 8)))
    refs["extra"], hyps["extra"] = "a a a b b b b", "a c c c a a"
    result = score_texts(refs, hyps)
    more = []
    for utt in result.words.utterances:
        ref, hyp = refs[utt.id].split(), hyps[utt.id].split()
        cost = 4 * utt.count("S") + 3 * (utt.count("D") + utt.count("I"))
        assert cost == edit_distance(ref, hyp, sub=4, indel=3)
        assert utt.errors >= edit_distance(ref, hyp)
        if utt.errors > edit_distance(ref, hyp):
            more.append(utt.id)
        assert [r for _, r, _ in utt.pairs if r is not None] == ref
        assert [h for _, _, h in utt.pairs if h is not None] == hyp
    assert "extra" in more and len(more) < 10
    errors = sum(u.errors for u in result.words.utterances)
    ref_words = sum(len(t.split()) for t in refs.values())
    assert result.words.sub + result.words.dele + result.words.ins == errors
    assert result.words.rate == pytest.approx(100 * errors / ref_words)


def test_summary_keys_and_character_rate():
    result = score_texts({"u1": "ab cd", "u2": "xyz"}, {"u1": "abd", "u2": ""})
    summary = result.summary()
    assert {"wer", "cer", "sub", "del", "ins", "ref_words", "utts"} <= set(summary)
    assert (summary["ref_words"], summary["utts"]) == (3, 2)
    assert summary["wer"] == pytest.approx(100.0)  # u1: 1 sub + 1 del, u2: 1 del
    # characters without spaces: abcd vs abd (1 del), xyz vs nothing (3 del)
    assert (summary["ref_chars"], summary["char_del"]) == (7, 4)
    assert summary["cer"] == pytest.approx(100 * 4 / 7, abs=1e-3)


def test_missing_hypotheses_are_empty_and_extra_ones_are_an_error():
    result = score_texts({"u1": "a b", "u2": "c"}, {"u1": "a b"})
    assert result.missing == ["u2"] and result.words.dele == 1
    with pytest.raises(ValueError, match="no reference, e.g. 'u9'"):
        score_texts({"u1": "a"}, {"u1": "a", "u9": "b"})


def test_empty_sets_and_empty_references():
    assert score_texts({}, {}).words.rate == 0.0
    assert score_texts({"u": ""}, {"u": ""}).words.rate == 0.0
    assert score_texts({"u": ""}, {"u": "x"}).words.rate == float("inf")


def test_normalisation_is_applied_to_both_sides_and_reported():
    norm = TextNormalizer(case="lower", punctuation="remove")
    result = score_texts({"u": "Hello, World! Don't"}, {"u": "hello world dont"}, norm)
    assert result.words.errors == 0
    assert "case lower, punctuation removed" in format_errors_file(result)
    assert score_texts({"u": "Hello"}, {"u": "hello"}).words.errors == 1  # case-sensitive


def test_alignment_report_looks_like_sclite():
    """The lines sclite -s -o pralign prints for this utterance (bar its trailing blanks)."""
    result = score_texts({"u1": "the cat sat on the mat"}, {"u1": "the bat sat on on the"})
    lines = format_alignments(result.words).splitlines()
    assert lines == ["id: u1",
                     "Scores: (#C #S #D #I) 4 1 1 1",
                     "REF:  the cat sat ** on the mat",
                     "HYP:  the bat sat on on the ***",
                     "Eval:     S       I         D"]


def test_text_files_round_trip(tmp_path):
    path = tmp_path / "hyp.txt"
    write_text(path, {"u1": "a b", "u2": "", "u3": "c"})
    assert path.read_text() == "u1 a b\nu2\nu3 c\n"
    assert read_text(path) == {"u1": "a b", "u2": "", "u3": "c"}
    path.write_text("u1 a\nu1 b\n")
    with pytest.raises(ValueError, match=r"hyp.txt:2: duplicate id 'u1'"):
        read_text(path)


def test_text_files_split_lines_at_newlines_only(tmp_path):
    path = tmp_path / "ref.txt"
    # a byte-order mark, CRLF line ends, and characters str.splitlines() would break at
    path.write_bytes("\ufeffu1 hello\u2028world\r\nu2 a\x85b\x0cc\nu3\n".encode())
    assert read_text(path) == {"u1": "hello\u2028world", "u2": "a\x85b\x0cc", "u3": ""}
    result = score_texts(read_text(path), {"u1": "hello world", "u2": "a b c"})
    assert (result.words.errors, result.words.ref_tokens, len(result.words.utterances)) == (0, 5, 3)
    path.write_bytes(b"u1 ok\nu2 caf\xe9\n")
    with pytest.raises(ValueError, match=r"ref.txt:2: not UTF-8 text \(byte 0xe9 at byte 7"):
        read_text(path)
    with pytest.raises(ValueError, match=r"hyp.txt: the text of 'u2' holds a line break"):
        write_text(tmp_path / "hyp.txt", {"u1": "a", "u2": "b\nc"})
    assert not (tmp_path / "hyp.txt").exists()


def test_errors_file_aligns_characters_for_text_without_spaces():
    result = score_texts({"u1": "北京欢迎你", "u2": "你好"}, {"u1": "北京欢你", "u2": "你好吗"})
    text = format_errors_file(result)
    assert "# alignments by characters" in text
    assert "Scores: (#C #S #D #I) 4 0 1 0" in text and "Scores: (#C #S #D #I) 2 0 0 1" in text
    assert result.summary()["cer"] == pytest.approx(100 * 2 / 7, abs=1e-3)
    assert "# alignments by words" in format_errors_file(score_texts({"u": "a b"}, {"u": "a"}))
