"""Our WER equals sclite's (NIST SCTK, Debian `sctk`) on the same files, to 0.01."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asrkit.scoring.wer import score_texts

SCLITE = shutil.which("sclite") or next(
    (p for p in ("/usr/lib/sctk/bin/sclite", "/usr/bin/sclite") if Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(SCLITE is None, reason="sclite not installed "
                                "(tools/install_deps.sh installs the sctk package)")

TRICKY = {  # id: (reference, hypothesis)
    "empty_hyp": ("the cat sat on the mat", ""),
    "insertions_only": ("go home", "go go home now please"),
    "empty_ref": ("", "noise words"),
    "repeated_words": ("the the the cat", "the cat"),
    "repeats_in_hyp": ("a b a b", "a a b b a b"),
    "all_wrong_longer": ("one two", "three four five six"),
    "single_sub": ("hello world", "hello word"),
    "shifted": ("a b c d e f", "x a b c d e"),
    "exact": ("nothing to see here", "nothing to see here"),
}


def run_sclite(refs: dict[str, str], hyps: dict[str, str], tmp: Path) -> dict[str, tuple]:
    """Per utterance (C, S, D, I) from sclite's pralign report (case-sensitive)."""
    for name, texts in (("ref.trn", refs), ("hyp.trn", hyps)):
        (tmp / name).write_text("".join(f"{t} ({uid})\n" for uid, t in texts.items()))
    out = subprocess.run([SCLITE, "-r", str(tmp / "ref.trn"), "trn", "-h", str(tmp / "hyp.trn"),
                          "trn", "-i", "wsj", "-s", "-o", "pralign", "stdout"],
                         capture_output=True, text=True, check=True).stdout
    ids = re.findall(r"^id: \((\S+)\)$", out, re.MULTILINE)
    scores = re.findall(r"^Scores: \(#C #S #D #I\) (\d+) (\d+) (\d+) (\d+)$", out, re.MULTILINE)
    assert len(ids) == len(scores) == len(refs), out
    return {uid: tuple(map(int, s)) for uid, s in zip(ids, scores)}


def sclite_wer(counts: dict[str, tuple]) -> float:
    ref_words = sum(c + s + d for c, s, d, _ in counts.values())
    errors = sum(s + d + i for _, s, d, i in counts.values())
    return 100.0 * errors / ref_words


def test_tricky_cases_match_sclite(tmp_path):
    refs = {uid: ref for uid, (ref, _) in TRICKY.items()}
    hyps = {uid: hyp for uid, (_, hyp) in TRICKY.items()}
    ours = score_texts(refs, hyps)
    theirs = run_sclite(refs, hyps, tmp_path)
    assert ours.words.rate == pytest.approx(sclite_wer(theirs), abs=0.01)
    for utt in ours.words.utterances:
        c, s, d, i = theirs[utt.id]
        assert utt.errors == s + d + i, utt.id
        assert len(utt.ref) == c + s + d, utt.id
    by_id = {u.id: u for u in ours.words.utterances}
    assert (by_id["empty_hyp"].count("D"), by_id["empty_hyp"].errors) == (6, 6)
    assert by_id["insertions_only"].count("I") == by_id["insertions_only"].errors == 3
    assert by_id["empty_ref"].count("I") == 2
    assert by_id["repeated_words"].count("D") == by_id["repeated_words"].errors == 2


def test_random_sentences_match_sclite(tmp_path):
    rng = random.Random(0)
    vocab = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "mat", "house", "big",
             "small", "red", "blue", "it", "is", "was", "to", "go"]
    refs, hyps = {}, {}
    for n in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
        hyp = []
        for word in ref:  # about 20 % word errors of every kind
            r = rng.random()
            if r < 0.07:
                hyp.append(rng.choice(vocab))
            elif r < 0.13:
                continue
            else:
                hyp.append(word)
            if rng.random() < 0.06:
                hyp.append(rng.choice(vocab))
        refs[f"utt{n:03d}"], hyps[f"utt{n:03d}"] = " ".join(ref), " ".join(hyp)
    ours = score_texts(refs, hyps)
    theirs = run_sclite(refs, hyps, tmp_path)
    assert 10.0 < ours.words.rate < 40.0
    assert ours.words.rate == pytest.approx(sclite_wer(theirs), abs=0.01)


def test_where_sclite_weights_choose_a_different_alignment(tmp_path):
    """Documented in asrkit/scoring/wer.py: sclite minimises 4·S + 3·(D + I), not S + D + I.
    Same errors, different split: jiwer takes 2 substitutions, sclite 1 deletion + 1
    insertion. Rarely even the error count differs (jiwer 6, sclite 7 here)."""
    refs = {"split": "a b", "count": "a a a b b b b"}
    hyps = {"split": "b c", "count": "a c c c a a"}
    ours = {u.id: u for u in score_texts(refs, hyps).words.utterances}
    theirs = run_sclite(refs, hyps, tmp_path)
    assert ours["split"].errors == sum(theirs["split"][1:]) == 2
    assert ours["split"].count("S") == 2
    assert theirs["split"] == (1, 0, 1, 1)  # C S D I
    assert ours["count"].errors == 6
    assert sum(theirs["count"][1:]) == 7
