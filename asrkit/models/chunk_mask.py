"""Chunk attention masks for streaming encoders (WeNet U2, Zhang et al. 2020, arXiv
2012.05481, sec. 2.2 and 3.1: "dynamic chunk training").

The encoder frames are cut into chunks of ``chunk_size`` frames: frame i may attend to
frame j when j lies in i's own chunk (frames later in the same chunk included, which is the
chunk's latency) or in one of the ``left_chunks`` chunks to its left (``left_chunks < 0``:
all of them). A model trained with such masks can then be run one chunk at a time with a
bounded key/value cache (``forward_chunk`` of the encoders, asrkit.models.chunk_by_chunk).

``ChunkConfig`` holds an encoder's options and picks the mask of one forward pass:

- a chunk size passed to the forward (decoding) wins, with the left chunks passed (else
  the configured ones); ``0`` means full context;
- else, in training with ``dynamic_chunk``, one draw per batch (``dynamic_chunk``): with
  probability 1/2 full context, else a chunk size uniform in 1..25 (``MAX_DYNAMIC_CHUNK``,
  WeNet's) and, with ``dynamic_left_chunks``, a number of left chunks uniform in
  0..(T-1) // chunk_size (else unlimited);
- else the configured ``chunk_size`` / ``left_chunks`` (static chunk training, and the
  default decoding chunk). With ``chunk_size: 0`` the mask is the plain padding mask,
  exactly as an encoder without these options builds it.

Draws use torch's global generator (the trainer seeds it and saves its state), on the CPU.
A drawn mask is built outside ``torch.compile``'s graph (``torch.compiler.disable``: one
graph break per forward in dynamic chunk training), so the compiled graph sees a mask
tensor and is not specialised, and recompiled, per drawn chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch

from asrkit.arg_types import Ge
from asrkit.models.mask import padding_mask

LeftChunks = Annotated[int, Ge(-1)]  # -1: unlimited left context
MAX_DYNAMIC_CHUNK = 25  # WeNet's: dynamic chunk sizes are drawn from 1..25


def chunk_attention_mask(size: int, chunk_size: int, left_chunks: int = -1,
                         device: torch.device | None = None) -> torch.Tensor:
    """(size, size) bool, True where frame i may attend to frame j: j in i's chunk or in up
    to ``left_chunks`` chunks before it (< 0: all). ``chunk_size <= 0``: full context."""
    if chunk_size <= 0:
        return torch.ones(size, size, dtype=torch.bool, device=device)
    chunk = torch.arange(size, device=device) // chunk_size  # (size,) chunk of each frame
    behind = chunk.unsqueeze(1) - chunk.unsqueeze(0)  # (size, size) chunks from j up to i
    allowed = behind >= 0
    if left_chunks >= 0:
        allowed = allowed & (behind <= left_chunks)  # not &=, which ONNX cannot export
    return allowed


def dynamic_chunk(num_frames: int, dynamic_left_chunks: bool = False,
                  max_chunk: int = MAX_DYNAMIC_CHUNK) -> tuple[int, int]:
    """One draw of (chunk_size, left_chunks) for a batch of ``num_frames`` encoder frames:
    (0, -1) (full context) with probability 1/2, else chunk_size uniform in 1..max_chunk
    and left_chunks -1 or, with ``dynamic_left_chunks``, uniform in
    0..(num_frames-1) // chunk_size."""
    if torch.rand(()).item() < 0.5:
        return 0, -1
    chunk_size = int(torch.randint(1, max_chunk + 1, ()).item())
    if not dynamic_left_chunks:
        return chunk_size, -1
    max_left = max(num_frames - 1, 0) // chunk_size
    return chunk_size, int(torch.randint(0, max_left + 1, ()).item())


def chunked_padding_mask(lengths: torch.Tensor, size: int, chunk_size: int,
                         left_chunks: int = -1) -> torch.Tensor:
    """(batch,) lengths -> (batch, size, size) attention mask: the padding mask over keys
    and the chunk mask. Padded queries keep every valid key (their outputs are padding and
    never read), so no row is empty unless the utterance is."""
    valid = padding_mask(lengths, size)  # (batch, size)
    chunks = chunk_attention_mask(size, chunk_size, left_chunks, lengths.device)
    return valid.unsqueeze(1) & (chunks.unsqueeze(0) | ~valid.unsqueeze(2))


@dataclass(frozen=True)
class ChunkConfig:
    """An encoder's chunk options (see the module docstring)."""

    chunk_size: int = 0
    left_chunks: int = -1
    dynamic: bool = False
    dynamic_left_chunks: bool = False

    def __post_init__(self) -> None:
        if self.chunk_size < 0:
            raise ValueError(f"chunk_size must be >= 0 (0: full context), got {self.chunk_size}")
        if self.left_chunks < -1:
            raise ValueError(f"left_chunks must be >= -1 (-1: unlimited), got {self.left_chunks}")

    def choose(self, training: bool, num_frames: int, chunk_size: int | None = None,
               left_chunks: int | None = None) -> tuple[int, int]:
        """(chunk_size, left_chunks) of one forward pass; chunk_size 0 = full context."""
        if chunk_size is not None:
            return chunk_size, self.left_chunks if left_chunks is None else left_chunks
        if training and self.dynamic:
            return dynamic_chunk(num_frames, self.dynamic_left_chunks)
        return self.chunk_size, self.left_chunks

    def attention_mask(self, lengths: torch.Tensor, size: int, training: bool,
                       chunk_size: int | None = None,
                       left_chunks: int | None = None) -> torch.Tensor:
        """(batch, 1, size) padding mask over keys (full context) or (batch, size, size)."""
        if chunk_size is None and training and self.dynamic:
            return _drawn_attention_mask(self, lengths, size)
        chunk, left = self.choose(training, size, chunk_size, left_chunks)
        return _attention_mask(lengths, size, chunk, left)


def _attention_mask(lengths: torch.Tensor, size: int, chunk_size: int,
                    left_chunks: int) -> torch.Tensor:
    # one chunk is full context; not while tracing (asrkit export), where the comparison
    # with the traced input's length would be frozen into the graph for every length
    if chunk_size <= 0 or (chunk_size >= size and not torch.jit.is_tracing()):
        return padding_mask(lengths, size).unsqueeze(1)  # (batch, 1, size)
    return chunked_padding_mask(lengths, size, chunk_size, left_chunks)  # (batch, size, size)


@torch.compiler.disable
def _drawn_attention_mask(config: ChunkConfig, lengths: torch.Tensor,
                          size: int) -> torch.Tensor:
    """The mask of one dynamic chunk draw, built eagerly (see the module docstring)."""
    chunk, left = dynamic_chunk(size, config.dynamic_left_chunks)
    return _attention_mask(lengths, size, chunk, left)
