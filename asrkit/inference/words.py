"""Words from timed tokens, for any tokenizer asrkit trains.

Word boundaries come from the units themselves, as the tokenizers spell them
(asrkit.text): a sentencepiece piece starting with "▁" begins a word; the character
tokenizer's "▁" is a unit of its own between words (a separator, no word's part); a CJK
character is a word by itself (as CER scoring and WeNet's timestamps treat Mandarin); the
special units (blank, unk, sos/eos) belong to no word and split none: words are read as if
they were not there, so the words' text is ``Tokenizer.decode`` of the hypothesis, which
drops them. A word's text is the tokenizer's
decoding of its tokens, its start/end the first token's start and the last token's end,
its confidence the mean of its tokens'.

    builder = WordBuilder(tokenizer)
    words, word_of_token = builder.words(ids, start_s, end_s, confidence)
    builder.joins_next(ids)                    # (U,) bool: token i + 1 is in token i's word
    builder.join([w.text for w in words])      # the text ("" between CJK words, else " ")

Per-token work is vectorised over the hypothesis (lookup tables over the vocabulary).
"""

from __future__ import annotations

import re

import torch

from asrkit.inference.result import Word
from asrkit.text.base import SPECIAL_UNITS, Tokenizer

WORD_START = "▁"
# a character that is a word by itself: CJK ideographs, kana, hangul, fullwidth forms
STANDS_ALONE = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]$")


class WordBuilder:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        units = tokenizer.units
        bare = [u.removeprefix(WORD_START) for u in units]
        self.special = torch.arange(len(units)) < len(SPECIAL_UNITS)                # (V,)
        self.separator = torch.tensor([not b for b in bare]) & ~self.special        # (V,)
        self.opens = torch.tensor([u.startswith(WORD_START) for u in units])        # (V,)
        self.alone = torch.tensor([bool(STANDS_ALONE.match(b)) for b in bare])      # (V,)
        spaced = any(WORD_START in u for u in units) or not bool(self.alone.any())
        self.joiner = " " if spaced else ""

    def join(self, words: list[str]) -> str:
        return self.joiner.join(words)

    def word_of_token(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (U,) -> (U,) long: the number of the word each token belongs to, from 0, and
        -1 for separators and special units."""
        ids = ids.long()
        special = self.special[ids]
        if bool(special.any()):  # words as if the special units were not there
            word = torch.full_like(ids, -1)
            word[~special] = self.word_of_token(ids[~special])
            return word
        separator = self.separator[ids]
        previous_sep = torch.cat([torch.tensor([True]), separator[:-1]])
        previous_alone = torch.cat([torch.tensor([False]), self.alone[ids][:-1]])
        begins = ~separator & (self.opens[ids] | self.alone[ids] | previous_sep | previous_alone)
        return (torch.cumsum(begins.long(), 0) - 1).masked_fill(separator, -1)

    def joins_next(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (U,) -> (U,) bool: token i + 1 belongs to the same word as token i."""
        word = self.word_of_token(ids)
        same = (word[1:] == word[:-1]) & (word[:-1] >= 0)
        return torch.cat([same, torch.zeros(min(1, word.numel()), dtype=torch.bool)])

    def words(self, ids: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
              confidence: torch.Tensor, aligned: bool = True,
              ) -> tuple[list[Word], torch.Tensor]:
        """ids (U,) with start/end seconds and confidence (U,) -> (words, word_of_token
        (U,) long: the word each token belongs to, -1 for separators)."""
        ids = ids.long()
        word_of_token = self.word_of_token(ids)
        member = word_of_token >= 0
        count = int(word_of_token.max()) + 1 if ids.numel() else 0
        if count == 0:
            return [], word_of_token
        index = word_of_token[member]
        first = torch.full((count,), float("inf"), dtype=torch.float64).scatter_reduce(
            0, index, start[member].double(), "amin")
        last = torch.zeros(count, dtype=torch.float64).scatter_reduce(
            0, index, end[member].double(), "amax")
        sizes = torch.bincount(index, minlength=count)
        mean_conf = torch.zeros(count, dtype=torch.float64).scatter_add(
            0, index, confidence[member].double()) / sizes
        pieces = torch.split(ids[member], sizes.tolist())
        texts = [self.tokenizer.decode(p.tolist()) for p in pieces]
        words = [Word(text, s, e, c, aligned) for text, s, e, c in
                 zip(texts, first.tolist(), last.tolist(), mean_conf.tolist())]
        return words, word_of_token
