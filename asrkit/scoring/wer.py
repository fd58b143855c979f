"""Word and character error rates with per-utterance alignments equal to sclite's, and
sclite-style reports.

    from asrkit.scoring.kaldi_text import read_text
    from asrkit.scoring.wer import score_texts
    refs, hyps = read_text("ref.txt"), read_text("hyp.txt")     # {id: text}, "<id> <text>" lines
    result = score_texts(refs, hyps, TextNormalizer(case="lower"))
    result.summary()   # {"wer": 12.3, "cer": 4.5, "sub": ..., "del": ..., "ins": ..., ...}
    print(format_alignments(result.words))                       # errors.txt

WER = (S + D + I) / N over the words of the whole set (N = reference words). Each utterance
is aligned as NIST sclite aligns it (asrkit.scoring.align: weights substitution 4, deletion
3, insertion 3 and sclite's tie-break), so S, D, I per utterance, the WER and errors.txt are
sclite's (run with ``-s``), not the minimum edit distance: on rare utterances with repeated
runs sclite's alignment has one error more (ref ``a a a b b b b`` / hyp ``a c c c a a``: 7
errors where Levenshtein has 6), and where a substitution could be a deletion plus an
insertion the split is sclite's. CER is the same over characters with whitespace removed (as
WeNet's compute-cer: a Mandarin CER, a letter error rate for English), equal to sclite run on
the characters as words. Unlike sclite's default, scoring is case-sensitive (normalise with
``case: lower`` to ignore case).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import Any

from asrkit.scoring.align import CORRECT, DELETION, INSERTION, SUBSTITUTION, align_batch
from asrkit.scoring.normalize import TextNormalizer


@dataclass
class UtteranceAlignment:
    """One utterance aligned: ``pairs`` of (op, ref token or None, hyp token or None)
    (counted once, on first use: not to be changed afterwards)."""

    id: str
    ref: list[str]
    hyp: list[str]
    pairs: list[tuple[str, str | None, str | None]]

    def count(self, op: str) -> int:
        return self._counts[op]

    @property
    def errors(self) -> int:
        return len(self.pairs) - self._counts[CORRECT]

    @cached_property
    def _counts(self) -> Counter:
        return Counter(map(itemgetter(0), self.pairs))


@dataclass
class ErrorCounts:
    """Totals over a set of aligned utterances, at one unit (words or characters)."""

    utterances: list[UtteranceAlignment] = field(default_factory=list)

    def _total(self, op: str) -> int:
        return sum(u.count(op) for u in self.utterances)

    @property
    def sub(self) -> int:
        return self._total(SUBSTITUTION)

    @property
    def dele(self) -> int:
        return self._total(DELETION)

    @property
    def ins(self) -> int:
        return self._total(INSERTION)

    @property
    def ref_tokens(self) -> int:
        return sum(len(u.ref) for u in self.utterances)

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        """Error rate in percent; with an empty reference set, 0 if no errors else inf."""
        if self.ref_tokens == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_tokens


@dataclass
class ScoreResult:
    words: ErrorCounts
    chars: ErrorCounts
    normalizer: TextNormalizer
    missing: list[str] = field(default_factory=list)  # reference ids without a hypothesis

    def summary(self) -> dict:
        """The scoring keys of wer.json (rates in percent, counts at word level). A rate is
        ``inf`` when the references have no tokens but the hypotheses do (``json_safe``
        writes it as null)."""
        return {
            "wer": self.words.rate, "cer": self.chars.rate,
            "sub": self.words.sub, "del": self.words.dele, "ins": self.words.ins,
            "ref_words": self.words.ref_tokens, "utts": len(self.words.utterances),
            "char_sub": self.chars.sub, "char_del": self.chars.dele, "char_ins": self.chars.ins,
            "ref_chars": self.chars.ref_tokens, "normalize": self.normalizer.to_dict(),
            "missing_hyps": len(self.missing),
        }


def words_of(text: str) -> list[str]:
    return text.split()


def chars_of(text: str) -> list[str]:
    return list("".join(text.split()))   # str.split() splits at every str.isspace() char


def align(ids: Sequence[str], refs: Sequence[Sequence[str]],
          hyps: Sequence[Sequence[str]]) -> list[UtteranceAlignment]:
    """sclite's alignment (asrkit.scoring.align) of each (ref, hyp) token list pair."""
    return [UtteranceAlignment(uid, list(ref), list(hyp), pairs)
            for uid, ref, hyp, pairs in zip(ids, refs, hyps, align_batch(refs, hyps))]


def score_texts(refs: Mapping[str, str], hyps: Mapping[str, str],
                normalizer: TextNormalizer | None = None) -> ScoreResult:
    """Score every reference utterance, in the reference order.

    A reference id without a hypothesis is scored as an empty hypothesis (all deletions) and
    listed in ``missing``; a hypothesis id without a reference is an error."""
    normalizer = normalizer or TextNormalizer()
    extra = [uid for uid in hyps if uid not in refs]
    if extra:
        raise ValueError(f"{len(extra)} hypothesis id(s) have no reference, e.g. {extra[0]!r}")
    ids = list(refs)
    missing = [uid for uid in ids if uid not in hyps]
    ref_texts = [normalizer(refs[uid]) for uid in ids]
    hyp_texts = [normalizer(hyps.get(uid, "")) for uid in ids]
    words = align(ids, [words_of(t) for t in ref_texts], [words_of(t) for t in hyp_texts])
    chars = align(ids, [chars_of(t) for t in ref_texts], [chars_of(t) for t in hyp_texts])
    return ScoreResult(ErrorCounts(words), ErrorCounts(chars), normalizer, missing)


def json_safe(value: Any) -> Any:
    """``value`` (a summary dict, or anything in one) with every non-finite float (an
    undefined rate) replaced by None, so that it is valid JSON (null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def format_result_line(result: ScoreResult, unit: str = "word") -> str:
    """``WER 12.34 % [ 15 / 122, 10 sub, 2 del, 3 ins ] 20 utterances`` (or CER)."""
    counts = result.words if unit == "word" else result.chars
    name = "WER" if unit == "word" else "CER"
    return (f"{name} {counts.rate:.2f} % [ {counts.errors} / {counts.ref_tokens}, "
            f"{counts.sub} sub, {counts.dele} del, {counts.ins} ins ] "
            f"{len(counts.utterances)} utterances")


def format_alignments(counts: ErrorCounts) -> str:
    """Per-utterance aligned REF/HYP lines in the manner of sclite's ``pralign`` report:
    ``***`` fills the empty side of an insertion or deletion, the Eval line marks S/D/I."""
    blocks = []
    for utt in counts.utterances:
        ref_line, hyp_line, eval_line = ["REF: "], ["HYP: "], ["Eval:"]
        for op, ref, hyp in utt.pairs:
            width = max(_width(ref or ""), _width(hyp or ""), 1)
            ref_line.append(_pad(ref if ref is not None else "*" * width, width))
            hyp_line.append(_pad(hyp if hyp is not None else "*" * width, width))
            eval_line.append(_pad("" if op == CORRECT else op, width))
        counts = " ".join(str(utt.count(op))
                          for op in (CORRECT, SUBSTITUTION, DELETION, INSERTION))
        blocks.append("\n".join([
            f"id: {utt.id}",
            f"Scores: (#C #S #D #I) {counts}",
            " ".join(ref_line).rstrip(), " ".join(hyp_line).rstrip(),
            " ".join(eval_line).rstrip(),
        ]))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def format_errors_file(result: ScoreResult, unit: str | None = None) -> str:
    """errors.txt: the WER/CER lines and normalisation, then the alignments by ``unit``
    ("word" or "char"; by default words, or characters when no reference has two words,
    as with Mandarin text written without spaces)."""
    if unit is None:
        several = any(len(u.ref) > 1 for u in result.words.utterances)
        unit = "word" if several or not result.words.utterances else "char"
    header = [f"# {format_result_line(result, 'word')}",
              f"# {format_result_line(result, 'char')}",
              f"# normalisation: {result.normalizer.describe()}",
              f"# alignments by {'words' if unit == 'word' else 'characters'}"]
    if result.missing:
        header.append(f"# {len(result.missing)} utterance(s) had no hypothesis (scored empty)")
    counts = result.words if unit == "word" else result.chars
    return "\n".join(header) + "\n\n" + format_alignments(counts)


def _width(text: str) -> int:
    """Display width: East Asian wide and full-width characters take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
