"""Our alignments, per-utterance C/S/D/I and WER/CER equal sclite's (NIST SCTK, Debian
`sctk`) run on the same texts: the sclite binary is the reference."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asrkit.scoring.align import align_batch
from asrkit.scoring.wer import score_texts

SCLITE = shutil.which("sclite") or next(
    (p for p in ("/usr/lib/sctk/bin/sclite", "/usr/bin/sclite") if Path(p).is_file()), None)
pytestmark = pytest.mark.skipif(SCLITE is None, reason="sclite not installed "
                                "(tools/install_deps.sh installs the sctk package)")

TRICKY = {  # id: (reference, hypothesis)
    "empty_hyp": ("the cat sat on the mat", ""),
    "insertions_only": ("go home", "go go home now please"),
    "empty_ref": ("", "noise words"),
    "both_empty": ("", ""),
    "repeated_words": ("the the the cat", "the cat"),
    "repeats_in_hyp": ("a b a b", "a a b b a b"),
    "all_wrong_longer": ("one two", "three four five six"),
    "single_sub": ("hello world", "hello word"),
    "shifted": ("a b c d e f", "x a b c d e"),
    "exact": ("nothing to see here", "nothing to see here"),
    "sub_or_del_ins": ("a b", "b c"),                     # sclite: D C I, not S S
    "one_more_error": ("a a a b b b b", "a c c c a a"),   # sclite: 7 errors, Levenshtein 6
}
OPS = "CSDI"


def run_sclite(refs: dict[str, list[str]], hyps: dict[str, list[str]],
               tmp: Path) -> tuple[dict[str, list[tuple]], tuple[int, int]]:
    """sclite (case-sensitive) on token lists: per utterance its alignment as (op, ref, hyp)
    triples (from the sgml report), and its own set totals (reference words, errors) from
    the raw summary's Sum line."""
    for name, texts in (("ref.trn", refs), ("hyp.trn", hyps)):
        (tmp / name).write_text("".join(f"{' '.join(t)} ({uid})\n" for uid, t in texts.items()))
    out = subprocess.run([SCLITE, "-r", "ref.trn", "trn", "-h", "hyp.trn", "trn", "-i", "wsj",
                          "-s", "-o", "rsum", "sgml", "stdout"], cwd=tmp,
                         capture_output=True, text=True, check=True).stdout
    paths = {}
    for uid, body in re.findall(r'<PATH id="\((\S+)\)"[^>]*>\n(.*?)</PATH>', out, re.DOTALL):
        words = [item.split(",") for item in body.split(":")] if body.strip() else []
        paths[uid] = [(op, ref.strip('"') or None, hyp.strip().strip('"') or None)
                      for op, ref, hyp in words]
    assert len(paths) == len(refs), out[-2000:]
    total = re.search(r"\| Sum\s+\|\s+\d+\s+(\d+)\s+\|\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)\s", out)
    return paths, (int(total[1]), int(total[2]))


def counts(pairs: list[tuple]) -> tuple[int, ...]:
    return tuple(sum(1 for op, _, _ in pairs if op == x) for x in OPS)


def assert_same_as_sclite(refs: dict[str, str], hyps: dict[str, str], tmp: Path) -> None:
    """Per utterance the same alignment (hence C/S/D/I), and the same set WER."""
    ours = score_texts(refs, hyps)
    theirs, (ref_words, errors) = run_sclite({u: t.split() for u, t in refs.items()},
                                             {u: t.split() for u, t in hyps.items()}, tmp)
    for utt in ours.words.utterances:
        assert utt.pairs == theirs[utt.id], (utt.id, refs[utt.id], hyps[utt.id])
    assert (ours.words.ref_tokens, ours.words.errors) == (ref_words, errors)
    if ref_words:
        assert ours.words.rate == pytest.approx(100.0 * errors / ref_words, abs=1e-9)


def test_tricky_cases_match_sclite(tmp_path):
    refs = {uid: ref for uid, (ref, _) in TRICKY.items()}
    hyps = {uid: hyp for uid, (_, hyp) in TRICKY.items()}
    assert_same_as_sclite(refs, hyps, tmp_path)
    by_id = {u.id: u for u in score_texts(refs, hyps).words.utterances}
    expected = {  # C S D I, as sclite reports them
        "empty_hyp": (0, 0, 6, 0), "insertions_only": (2, 0, 0, 3), "empty_ref": (0, 0, 0, 2),
        "both_empty": (0, 0, 0, 0), "repeated_words": (2, 0, 2, 0),
        "sub_or_del_ins": (1, 0, 1, 1), "one_more_error": (3, 0, 4, 3)}
    for uid, cdsi in expected.items():
        assert tuple(by_id[uid].count(op) for op in OPS) == cdsi, uid


def test_one_file_with_the_extra_error_case_has_sclites_wer(tmp_path):
    """The case the minimum edit distance got wrong: 7 errors / 7 words, not 6 / 7."""
    refs = {"u1": "a a a b b b b", "u2": "the cat sat on the mat"}
    hyps = {"u1": "a c c c a a", "u2": "the cat sat on a mat"}
    assert_same_as_sclite(refs, hyps, tmp_path)
    assert score_texts(refs, hyps).words.rate == pytest.approx(100 * 8 / 13)


def test_random_pairs_match_sclite_per_utterance(tmp_path):
    """3000 random pairs over 2-4 letter alphabets, 0-12 tokens: repeated runs, where tied
    weighted costs (and so sclite's tie-break) are common."""
    rng = random.Random(0)
    refs, hyps = {}, {}
    for n in range(3000):
        alphabet = "abcd"[:rng.randint(2, 4)]
        refs[f"r{n:04d}"] = " ".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        hyps[f"r{n:04d}"] = " ".join(rng.choices(alphabet, k=rng.randint(0, 12)))
    assert_same_as_sclite(refs, hyps, tmp_path)


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
    assert 10.0 < score_texts(refs, hyps).words.rate < 40.0
    assert_same_as_sclite(refs, hyps, tmp_path)


def test_characters_match_sclite_on_spaced_characters(tmp_path):
    """CER: our character alignment (whitespace removed) is sclite's with every character
    written as a word."""
    rng = random.Random(1)
    refs, hyps = {}, {}
    for n in range(500):
        refs[f"c{n:03d}"] = " ".join("".join(rng.choices("abc", k=rng.randint(1, 4)))
                                     for _ in range(rng.randint(0, 4)))
        hyps[f"c{n:03d}"] = " ".join("".join(rng.choices("abc", k=rng.randint(1, 4)))
                                     for _ in range(rng.randint(0, 4)))
    ours = score_texts(refs, hyps).chars
    theirs, (ref_chars, errors) = run_sclite({u: list(t.replace(" ", "")) for u, t in refs.items()},
                                             {u: list(t.replace(" ", "")) for u, t in hyps.items()},
                                             tmp_path)
    for utt in ours.utterances:
        assert utt.pairs == theirs[utt.id], utt.id
    assert (ours.ref_tokens, ours.errors) == (ref_chars, errors)


def test_align_batch_chunks_do_not_change_alignments(monkeypatch, tmp_path):
    """Long utterances split over many small vectorised chunks still give sclite's paths."""
    import asrkit.scoring.align as align_module

    rng = random.Random(2)
    refs = [rng.choices("ab", k=rng.randint(0, 60)) for _ in range(200)]
    hyps = [rng.choices("ab", k=rng.randint(0, 60)) for _ in range(200)]
    theirs, _ = run_sclite({f"l{k}": r for k, r in enumerate(refs)},
                           {f"l{k}": h for k, h in enumerate(hyps)}, tmp_path)
    monkeypatch.setattr(align_module, "MAX_CELLS", 5000)
    for k, pairs in enumerate(align_batch(refs, hyps)):
        assert pairs == theirs[f"l{k}"], k
