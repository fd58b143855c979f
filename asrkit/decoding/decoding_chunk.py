"""Decoding a streaming encoder at a chunk size (WeNet U2's ``decoding_chunk_size`` and
``num_decoding_left_chunks``; Zhang et al. 2020): the encoder runs its full forward under
the chunk attention mask (asrkit.models.chunk_mask), which equals running it chunk by chunk
(asrkit.models.chunk_by_chunk; asrkit.inference.streaming streams that way), so a test set
decoded at chunk size N gives the WER a streaming recogniser would have at N.

    chunk = DecodingChunk.resolve(model.encoder, chunk_size=16, left_chunks=-1)
    enc, enc_lens = model.encode(feats, feat_lens, **chunk.encode_kwargs())
    chunk.settings()          # {"chunk_size": 16, "left_chunks": None}: part of the result's key

``chunk_size`` None: the encoder's configured chunk (0, full context, unless it was trained
with a static chunk); 0: full context; N: N encoder frames per chunk. ``left_chunks`` None:
the encoder's configured left chunks; -1: all. A full-context decode adds nothing to the
result's settings, so its results keep the names they had before chunked decoding existed;
a chunked one adds ``chunk_size`` (and ``left_chunks`` when limited), so results at several
chunk sizes sit side by side in ``decode/<checkpoint>/<set>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class DecodingChunk:
    chunk_size: int = 0    # encoder frames per chunk; 0: full context
    left_chunks: int = -1  # chunks of left context; -1: all
    masked: bool = False   # the encoder takes chunk_size / left_chunks in its forward

    @classmethod
    def resolve(cls, encoder: nn.Module, chunk_size: int | None = None,
                left_chunks: int | None = None) -> DecodingChunk:
        """The chunk a decode runs ``encoder`` at; a chunk asked of an encoder without a
        chunk mask (ContextNet) is a ValueError naming ``decoding_chunk_size``."""
        chunking = getattr(encoder, "chunking", None)
        if chunking is None:
            if chunk_size:
                raise ValueError(f"decoding_chunk_size: {type(encoder).__name__} has no chunk "
                                 f"attention mask (streaming encoders: conformer, transformer, "
                                 f"moe_conformer)")
            return cls()
        if chunk_size is not None and chunk_size < 0:
            raise ValueError(f"decoding_chunk_size: must be >= 0 (0: full context), got "
                             f"{chunk_size}")
        if left_chunks is not None and left_chunks < -1:
            raise ValueError(f"num_decoding_left_chunks: must be >= -1 (-1: all), got "
                             f"{left_chunks}")
        size = chunking.chunk_size if chunk_size is None else chunk_size
        left = chunking.left_chunks if left_chunks is None else left_chunks
        return cls(size, left if size > 0 else -1, masked=True)

    def encode_kwargs(self) -> dict[str, int]:
        """Keyword arguments of ``model.encode`` for this chunk (none without a mask)."""
        if not self.masked:
            return {}
        return {"chunk_size": self.chunk_size, "left_chunks": self.left_chunks}

    def settings(self) -> dict[str, Any]:
        """What a result records of the chunk: nothing at full context."""
        if self.chunk_size <= 0:
            return {}
        return {"chunk_size": self.chunk_size,
                "left_chunks": self.left_chunks if self.left_chunks >= 0 else None}
