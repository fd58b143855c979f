"""asrkit.scoring.align against a plain scalar implementation of sclite's rule, the minimum
weighted cost, and alignments sclite printed (tests/scoring/test_sclite.py runs sclite)."""

import random

import pytest

from asrkit.scoring.align import DEL_COST, INS_COST, SUB_COST, align_batch, align_tokens


def scalar_sclite(ref: list[str], hyp: list[str]) -> list[tuple]:
    """Cell by cell: keep the diagonal if <= deletion and insertion, else the insertion if
    <= deletion, else the deletion; follow the back-pointers from the last cell."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [["I"] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0], back[i][0] = cost[i - 1][0] + DEL_COST, "D"
    for j in range(1, m + 1):
        cost[0][j] = cost[0][j - 1] + INS_COST
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = cost[i - 1][j - 1] + (0 if ref[i - 1] == hyp[j - 1] else SUB_COST)
            dele, ins = cost[i - 1][j] + DEL_COST, cost[i][j - 1] + INS_COST
            if diag <= dele and diag <= ins:
                cost[i][j], back[i][j] = diag, "diag"
            elif ins <= dele:
                cost[i][j], back[i][j] = ins, "I"
            else:
                cost[i][j], back[i][j] = dele, "D"
    pairs, i, j = [], n, m
    while i or j:
        if back[i][j] == "diag":
            pairs.append(("C" if ref[i - 1] == hyp[j - 1] else "S", ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif back[i][j] == "D":
            pairs.append(("D", ref[i - 1], None))
            i -= 1
        else:
            pairs.append(("I", None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def weighted_cost(pairs: list[tuple]) -> int:
    return sum({"C": 0, "S": SUB_COST, "D": DEL_COST, "I": INS_COST}[op] for op, _, _ in pairs)


def levenshtein(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def _random_pairs(seed: int, count: int, max_len: int = 12):
    rng = random.Random(seed)
    refs, hyps = [], []
    for _ in range(count):
        alphabet = "abcde"[:rng.randint(2, 5)]
        refs.append(rng.choices(alphabet, k=rng.randint(0, max_len)))
        hyps.append(rng.choices(alphabet, k=rng.randint(0, max_len)))
    return refs, hyps


def test_batch_equals_the_scalar_rule_and_keeps_every_token():
    refs, hyps = _random_pairs(0, 2000)
    for ref, hyp, pairs in zip(refs, hyps, align_batch(refs, hyps)):
        assert pairs == scalar_sclite(ref, hyp), (ref, hyp)
        assert [r for _, r, _ in pairs if r is not None] == ref
        assert [h for _, _, h in pairs if h is not None] == hyp


def test_cost_is_minimal_and_errors_are_at_least_levenshtein():
    refs, hyps = _random_pairs(1, 1000)
    more = 0
    for ref, hyp, pairs in zip(refs, hyps, align_batch(refs, hyps)):
        assert weighted_cost(pairs) == weighted_cost(scalar_sclite(ref, hyp))
        errors = sum(op != "C" for op, _, _ in pairs)
        assert errors >= levenshtein(ref, hyp)
        more += errors > levenshtein(ref, hyp)
    assert more < 20  # sclite's extra error is rare


@pytest.mark.parametrize("ref, hyp, expected", [  # sclite's own alignments (-o sgml)
    ("a a a b b b b", "a c c c a a", "C I I I C C D D D D"),
    ("a b", "b c", "D C I"),
    ("the the the cat", "the cat", "D D C C"),
    ("", "x y", "I I"),
    ("x y", "", "D D"),
    ("", "", ""),
])
def test_sclites_alignments(ref, hyp, expected):
    assert " ".join(op for op, _, _ in align_tokens(ref.split(), hyp.split())) == expected


def test_long_and_uneven_sequences():
    """Many small chunks, and a table too long for 16-bit costs (int32 then)."""
    refs, hyps = _random_pairs(2, 50, max_len=80)
    refs.append(["a", "b"] * 6000)
    hyps.append(["b"])
    aligned = align_batch(refs, hyps)
    assert aligned[-1] == scalar_sclite(refs[-1], hyps[-1])
    assert sum(op == "C" for op, _, _ in aligned[-1]) == 1
    for ref, hyp, pairs in zip(refs[:-1], hyps[:-1], aligned):
        assert pairs == scalar_sclite(ref, hyp)


def test_mismatched_batch_is_an_error():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        align_batch([["a"], ["b"]], [["a"]])
