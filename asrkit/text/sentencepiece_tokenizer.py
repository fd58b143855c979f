"""Sentencepiece word pieces (BPE or unigram LM; Kudo & Richardson 2018).

Trained with our fixed special ids: `<blank>` takes sentencepiece's pad slot (id 0, never
emitted), `<unk>` is 1 and `<sos/eos>` a control symbol at 2; sentencepiece's own bos/eos
are disabled. The model is saved as `spm.model` beside units.txt.

Text is normalised as sentencepiece does by default (``nmt_nfkc``: Unicode NFKC plus
whitespace clean-up), as in ESPnet's and WeNet's recipes: full-width digits and letters,
ligatures and the like come out in their plain forms (``２０`` → ``20``, ``ﬁ`` → ``fi``),
so ``decode(encode(text))`` can differ from ``text``. References are scored as written:
normalise such transcripts when preparing the corpus, or use the ``char`` tokenizer.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from asrkit.text.base import META_FILE, SOS_EOS_ID, SPECIAL_UNITS, Tokenizer, TokenizerError

MODEL_FILE = "spm.model"


class SentencePieceTokenizer(Tokenizer):
    def __init__(self, model_proto: bytes, type: str):
        self.type = type
        self._proto = model_proto
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self._units = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        if self._units[SOS_EOS_ID] != SPECIAL_UNITS[SOS_EOS_ID]:
            raise TokenizerError("sentencepiece model lacks <sos/eos> at id 2 (not trained by asrkit?)")
        self._units[: len(SPECIAL_UNITS)] = SPECIAL_UNITS

    @classmethod
    def train(cls, texts: list[str], type: str, vocab_size: int) -> SentencePieceTokenizer:
        if vocab_size <= len(SPECIAL_UNITS):
            raise TokenizerError(f"--vocab-size {vocab_size} leaves no room for word pieces (it "
                                 f"counts the {len(SPECIAL_UNITS)} special units)")
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, model_type=type,
                vocab_size=vocab_size, character_coverage=1.0, pad_id=0, pad_piece="<blank>",
                unk_id=1, bos_id=-1, eos_id=-1, control_symbols=["<sos/eos>"],
                input_sentence_size=2_000_000, shuffle_input_sentence=True, num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as e:
            if needed := re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(e)):
                raise TokenizerError(
                    f"--vocab-size {vocab_size} is less than the {needed[1]} units a {type} "
                    f"tokenizer of this text needs (one per distinct character, and the special "
                    f"units): use --vocab-size {needed[1]} or more") from None
            raise TokenizerError(f"sentencepiece ({type}, --vocab-size {vocab_size}): {e}") from None
        return cls(model.getvalue(), type)

    @classmethod
    def load(cls, directory: Path) -> SentencePieceTokenizer:
        import json

        path = directory / MODEL_FILE
        if not path.is_file():
            raise TokenizerError(f"{path}: not found")
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        try:
            return cls(path.read_bytes(), meta["type"])
        except RuntimeError as e:  # sentencepiece's parse error names no file
            raise TokenizerError(f"{path}: not a sentencepiece model "
                                 f"({str(e).strip().splitlines()[0]})") from None

    @property
    def units(self) -> list[str]:
        return self._units

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(text, out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        return self._sp.decode([i for i in ids if i >= len(SPECIAL_UNITS)]).strip()

    def _save_model(self, directory: Path) -> dict:
        (directory / MODEL_FILE).write_bytes(self._proto)
        return {"model": MODEL_FILE}
