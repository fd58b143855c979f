"""Running a streaming encoder one chunk at a time (WeNet U2, Zhang et al. 2020; WeNet's
``forward_chunk_by_chunk``), with the same output as its full forward under the chunk
mask of asrkit.models.chunk_mask.

The input layer has no padding on the time axis: encoder frame n reads input frames
n*factor .. n*factor + right_context (asrkit.models.subsampling). A chunk of ``chunk_size``
encoder frames therefore needs a window of (chunk_size-1)*factor + right_context + 1 input
frames, and consecutive windows start chunk_size*factor frames apart (they overlap by
right_context + 1 - factor frames): the windows give exactly the frames of the full
subsampling. The last window may be shorter and give fewer frames.

Above the input layer, each attention layer keeps the keys and values of the frames a
later chunk may attend to (``bounded_cache``: the last left_chunks * chunk_size frames, or
all with left_chunks < 0) and each causal convolution the last kernel_size-1 inputs of its
depthwise convolution. Caches are lists with one tensor per layer (empty before the first
chunk), so encoders whose layers differ in width (the MoE-Conformer's shared embedding)
fit the same loop. An encoder that streams has ``input_layer`` and
``forward_chunk(chunk_feats, offset, att_cache, cnn_cache, left_chunks)``.

Batches are utterances of equal length (no padding); decoding streams one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

LayerCaches = list[torch.Tensor]  # one tensor per layer; [] before the first chunk


def input_window(input_layer: nn.Module, chunk_size: int) -> tuple[int, int]:
    """(window, stride): input frames of one chunk of ``chunk_size`` encoder frames, and
    input frames between the starts of consecutive chunks."""
    if chunk_size < 1:
        raise ValueError(f"chunk-wise decoding needs chunk_size >= 1, got {chunk_size}")
    factor = input_layer.factor
    return (chunk_size - 1) * factor + input_layer.right_context + 1, chunk_size * factor


def cache_of(caches: Sequence[torch.Tensor], layer: int) -> torch.Tensor | None:
    """Layer ``layer``'s cache, or None before the first chunk."""
    return caches[layer] if caches else None


def bounded_cache(keys_values: torch.Tensor, left_chunks: int, chunk_frames: int,
                  ) -> torch.Tensor:
    """Keep of (batch, heads, K, 2 d_k) the frames the next chunk may attend to: the last
    left_chunks * chunk_frames (left_chunks < 0: all)."""
    if left_chunks < 0:
        return keys_values
    keep = min(left_chunks * chunk_frames, keys_values.size(2))
    return keys_values[:, :, keys_values.size(2) - keep:]


def cached_frames(att_cache: Sequence[torch.Tensor]) -> int:
    """Frames of left context in the attention caches (0 before the first chunk)."""
    return att_cache[0].size(2) if att_cache else 0


@torch.no_grad()
def run_chunk_by_chunk(encoder: nn.Module, feats: torch.Tensor, chunk_size: int,
                       left_chunks: int = -1) -> torch.Tensor:
    """feats (batch, T, input_dim), no padding -> enc (batch, T', d) computed chunk by
    chunk (T' = encoder.output_lengths(T); (batch, 0, d) when T is shorter than one
    encoder frame's input)."""
    window, stride = input_window(encoder.input_layer, chunk_size)
    context = encoder.input_layer.right_context + 1
    att_cache: LayerCaches = []
    cnn_cache: LayerCaches = []
    outputs, offset = [], 0
    for start in range(0, feats.size(1) - context + 1, stride):
        chunk = feats[:, start: start + window]  # (batch, <= window, input_dim)
        out, att_cache, cnn_cache = encoder.forward_chunk(chunk, offset, att_cache, cnn_cache,
                                                          left_chunks)
        outputs.append(out)  # (batch, <= chunk_size, d)
        offset += out.size(1)
    if not outputs:
        return feats.new_zeros(feats.size(0), 0, encoder.output_dim)
    return torch.cat(outputs, dim=1)


def subsample_chunk(input_layer: nn.Module, chunk_feats: torch.Tensor) -> torch.Tensor:
    """The input layer over one chunk's window: chunk_feats (batch, W, input_dim), every
    frame valid -> (batch, Q, d_model)."""
    lens = torch.full((chunk_feats.size(0),), chunk_feats.size(1), dtype=torch.long,
                      device=chunk_feats.device)
    return input_layer(chunk_feats, lens)[0]


class ChunkByChunk:
    """``forward_chunk_by_chunk`` for an encoder that has ``forward_chunk`` (mixed into the
    Conformer, Transformer and MoE-Conformer encoders)."""

    def forward_chunk_by_chunk(self, feats: torch.Tensor, chunk_size: int,
                               left_chunks: int = -1) -> torch.Tensor:
        """feats (batch, T, input_dim) without padding -> enc (batch, T', d_model), equal to
        ``forward(feats, lens, chunk_size, left_chunks)`` (a Conformer needs ``causal``)."""
        return run_chunk_by_chunk(self, feats, chunk_size, left_chunks)
