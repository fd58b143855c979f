"""SRT, CTM and JSON output parse back (with parsers written here) to the transcript."""

from __future__ import annotations

import io
import json
import re

import pytest

from asrkit.inference.formats import write_ctm, write_json, write_srt
from asrkit.inference.result import Failure, Token, Transcript, Word


def transcript() -> Transcript:
    words = [Word(w, s, e, c) for w, s, e, c in [
        ("the", 0.1, 0.3, 0.9), ("cat", 0.35, 0.7, 0.8), ("sat", 0.8, 1.1, 0.95),
        ("on", 2.5, 2.7, 0.7), ("a", 2.75, 2.8, 0.99), ("mat", 2.9, 3.3, 0.6)]]
    words += [Word(f"w{i}", 3.5 + 0.4 * i, 3.8 + 0.4 * i, 0.5) for i in range(14)]
    tokens = [Token(5, "t", 0.1, 0.14, 0.9)]
    return Transcript("data/my talk.wav", " ".join(w.text for w in words), words, tokens,
                      -12.5, 10.0)


SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n"
                     r"(.+)\n\n")


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def test_srt_parses_into_the_words_in_order():
    out = io.StringIO()
    write_srt(transcript(), out)
    text = out.getvalue()
    cues = SRT_CUE.findall(text)
    assert "".join(m.group(0) for m in SRT_CUE.finditer(text)) == text  # nothing else
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    words = transcript().words
    assert " ".join(c[9] for c in cues) == " ".join(w.text for w in words)
    # a pause of 1.4 s starts a new cue; no cue holds more than 12 words
    assert cues[0][9] == "the cat sat" and cues[1][9].startswith("on a mat")
    assert all(len(c[9].split()) <= 12 for c in cues)
    first_start, first_end = seconds(*cues[0][1:5]), seconds(*cues[0][5:9])
    assert (first_start, first_end) == (0.1, 1.1)
    ends = [seconds(*c[5:9]) for c in cues]
    starts = [seconds(*c[1:5]) for c in cues]
    assert all(s < e for s, e in zip(starts, ends)) and starts == sorted(starts)


def test_ctm_is_nist_ctm():
    out = io.StringIO()
    write_ctm(transcript(), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(transcript().words)
    for line, word in zip(lines, transcript().words):
        name, channel, begin, duration, text, confidence = line.split()
        assert (name, channel, text) == ("my_talk", "1", word.text)
        assert float(begin) == round(word.start, 3)
        assert abs(float(duration) - (word.end - word.start)) < 1e-3
        assert float(confidence) == pytest.approx(word.confidence, abs=5e-5)


def test_json_lines_parse():
    out = io.StringIO()
    write_json(transcript(), out)
    write_json(Failure("bad.wav", "bad.wav: empty audio"), out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["text"] == transcript().text and first["duration"] == 10.0
    assert [(w["text"], w["start"], w["end"]) for w in first["words"]][:2] == \
        [("the", 0.1, 0.3), ("cat", 0.35, 0.7)]
    assert first["words"][0]["confidence"] == 0.9 and first["tokens"][0]["id"] == 5
    assert second == {"source": "bad.wav", "error": "bad.wav: empty audio"}


def test_recording_names_are_one_path_component():
    """In-memory audio keeps the name inside its brackets (a stream's transcript, an array);
    a file, whatever its directories are called, its stem."""
    from asrkit.inference.formats import ctm_name

    assert [ctm_name(s) for s in ("<stream>", "<array 3>", "<../a.wav", "/d/<x>/b c.wav",
                                  "talk.flac")] == ["stream", "array_3", "a", "b_c", "talk"]
