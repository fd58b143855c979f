"""Words from tokens, and stitching overlapping windows: a word heard by two windows is kept
once, from the window that owns its midpoint, and nothing else is lost or repeated."""

from __future__ import annotations

import torch

from asrkit.inference.stitching import Stitcher, WindowHypothesis
from asrkit.inference.words import WordBuilder
from asrkit.text.char_tokenizer import CharTokenizer


def tokenizer() -> CharTokenizer:
    return CharTokenizer.train(["the cat sat on a mat", "我们"])


def hypothesis(tok: CharTokenizer, words: list[tuple[str, float]]) -> WindowHypothesis:
    """Tokens of ``words`` (text, start second), 0.1 s per character, a separator between."""
    ids, starts = [], []
    for n, (word, start) in enumerate(words):
        if n:
            ids.append(tok.encode("a b")[1])  # the "▁" unit
            starts.append(start - 0.05)
        for k, ch in enumerate(word):
            ids.append(tok.encode(ch)[0])
            starts.append(start + 0.1 * k)
    start = torch.tensor(starts, dtype=torch.float64)
    return WindowHypothesis(torch.tensor(ids), start, start + 0.1, torch.full((len(ids),), 0.9),
                            True, -1.0)


def test_words_from_char_units_and_cjk():
    tok = tokenizer()
    hyp = hypothesis(tok, [("the", 0.0), ("cat", 0.5), ("我们", 1.0)])
    words, word_of_token = WordBuilder(tok).words(hyp.ids, hyp.start, hyp.end, hyp.confidence)
    assert [w.text for w in words] == ["the", "cat", "我", "们"]
    assert [(round(w.start, 2), round(w.end, 2)) for w in words] == \
        [(0.0, 0.3), (0.5, 0.8), (1.0, 1.1), (1.1, 1.2)]
    assert word_of_token.tolist() == [0, 0, 0, -1, 1, 1, 1, -1, 2, 3]


def test_special_units_split_no_word_and_the_text_is_the_tokenizers_decoding():
    from asrkit.text.base import SOS_EOS_ID, UNK_ID

    tok = tokenizer()
    t, space = tok.encode("t")[0], tok.encode("a b")[1]
    ids = torch.tensor([t, UNK_ID, t, space, t, SOS_EOS_ID, t])
    start = torch.arange(7, dtype=torch.float64)
    builder = WordBuilder(tok)
    words, word_of_token = builder.words(ids, start, start + 1, torch.full((7,), 0.5))
    assert word_of_token.tolist() == [0, -1, 0, -1, 1, -1, 1]
    assert builder.join([w.text for w in words]) == tok.decode(ids.tolist()) == "tt tt"
    assert [(w.start, w.end) for w in words] == [(0.0, 3.0), (4.0, 7.0)]
    assert builder.joins_next(ids).tolist() == [False, False, False, False, False, False, False]
    assert builder.joins_next(torch.tensor([t, t, UNK_ID])).tolist() == [True, False, False]


def test_seam_keeps_each_word_once():
    tok = tokenizer()
    stitcher = Stitcher("x.wav", 10.0, WordBuilder(tok))
    # window 0 owns [0, 5) and decodes up to 6 s; window 1 owns [5, 10) and decodes from 4 s.
    # "mat" (4.5-4.8) and "on" (4.9-5.1, midpoint 5.0) lie in the overlap, heard by both.
    first = hypothesis(tok, [("the", 0.5), ("cat", 2.0), ("mat", 4.5), ("on", 4.9), ("a", 5.6)])
    second = hypothesis(tok, [("at", 4.1), ("mat", 4.5), ("on", 4.9), ("a", 5.6), ("cat", 7.0)])
    stitcher.add(1, (5.0, 10.0), first=False, last=True, hypothesis=second)  # any order
    stitcher.add(0, (0.0, 5.0), first=True, last=False, hypothesis=first)
    result = stitcher.result()
    assert [w.text for w in result.words] == ["the", "cat", "mat", "on", "a", "cat"]
    assert result.text == "the cat mat on a cat"
    assert [round(w.start, 2) for w in result.words] == [0.5, 2.0, 4.5, 4.9, 5.6, 7.0]
    assert "".join(t.text for t in result.tokens) == "thecatmatonacat"  # separators not listed
    assert result.windows == 2 and result.score == -2.0


def test_a_word_timed_across_the_cut_differently_by_the_two_windows_is_kept_once():
    """The windows' alignments may differ by a frame: "on" is timed 4.92-5.12 (midpoint 5.02)
    by the first window and 4.88-5.08 (4.98) by the second. The cut at 5.0 s then puts it in
    both windows' owned parts (twice) or, the other way round, in neither (lost)."""
    tok = tokenizer()
    early, late = ("on", 4.88), ("on", 4.92)
    for first_on, second_on, name in ((early, late, "both own it"),
                                      (late, early, "neither owns it")):
        stitcher = Stitcher("x.wav", 10.0, WordBuilder(tok))
        stitcher.add(0, (0.0, 5.0), True, False,
                     hypothesis(tok, [("the", 0.5), ("mat", 4.5), first_on, ("a", 5.6)]))
        stitcher.add(1, (5.0, 10.0), False, True,
                     hypothesis(tok, [("mat", 4.5), second_on, ("a", 5.6), ("cat", 7.0)]))
        result = stitcher.result()
        assert result.text == "the mat on a cat", name
        assert [round(w.start, 2) for w in result.words] == [0.5, 4.5, first_on[1], 5.6, 7.0]
        assert "".join(t.text for t in result.tokens) == "thematonacat", name


def test_a_repeated_word_at_the_seam_is_kept_twice():
    """Two spoken "the"s in a row, one on each side of the cut, are two words, also when the
    second window times them a frame (40 ms) earlier, so that its second "the" overlaps the
    first window's first one by that frame: the seam check leaves them both."""
    tok = tokenizer()
    for shift in (0.0, 0.04, -0.04):
        stitcher = Stitcher("x.wav", 10.0, WordBuilder(tok))
        words = [("cat", 4.0), ("the", 4.65), ("the", 4.95), ("mat", 5.6)]
        stitcher.add(0, (0.0, 5.0), True, False, hypothesis(tok, words))
        later = [(w, t + shift) for w, t in words]
        stitcher.add(1, (5.0, 10.0), False, True, hypothesis(tok, later))
        assert stitcher.result().text == "cat the the mat", shift
