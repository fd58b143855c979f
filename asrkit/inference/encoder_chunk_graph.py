"""The streaming encoder step as one exportable graph (``asrkit export --streaming``): one
chunk of WeNet U2's chunk-by-chunk encoding (Zhang et al. 2020;
asrkit.models.chunk_by_chunk), with the caches as graph inputs and outputs:

    encoder_chunk   chunk_feats (batch, window, mel)   the chunk's input window
                    offset ()                           encoder frames before the chunk
                    att_cache (layers, batch, heads, cache_frames, 2 d_head)
                    cnn_cache (layers, batch, kernel - 1, d)       (encoders with convolutions)
                 -> enc (batch, frames, d), next_att_cache (..., next_cache_frames, ...),
                    next_cnn_cache

``encoder.forward_chunk`` takes one cache tensor per layer in a list; the graph stacks them
into fixed-rank tensors (the layer axis first, as WeNet's ONNX export does) so that a
runtime feeds back what it got. Before the first chunk the attention cache has 0 frames and
the convolution cache is zeros (what ``forward_chunk`` assumes without one). The cache
length is a dynamic axis, bounded inside the graph to the last left_chunks * frames frames
(``left_chunks`` fixed at export; -1 keeps all, so the cache grows with the stream), as
``bounded_cache`` bounds it eagerly; the window is dynamic too, so the last, shorter chunk
of an utterance runs through the same graph. ``offset`` feeds the absolute positions of a
Transformer with ``pos_enc_layer_type: abs_pos``; encoders with relative positions read
the cache length instead, and the ONNX exporter drops the unused input (feed the inputs by
name: ``ExportedEncoderChunk``).

What cannot be exported this way: an encoder without ``forward_chunk`` (ContextNet), a
Conformer with a non-causal convolution (its kernel would read the next chunk), and an
MoE-Conformer with a shared router embedding (``embedding_layers`` > 0), whose blocks have
a width of their own: the caches of its layers differ in shape, so they do not stack into
one tensor (the MoE-Conformer without one exports). The dynamic cache length itself traces
for every encoder here: the sizes it depends on (cache frames, chunk frames) are read from
the tensors in the graph, never fixed at tracing.

    graph = EncoderChunkGraph.for_encoder(model.encoder, bins=80, chunk_size=16,
                                          left_chunks=4)
    example = graph.example_inputs()                   # the third chunk's inputs
    diff = compare_chunk_steps(model.encoder, exported_step, bins=80, chunk_size=16,
                               left_chunks=4)          # largest |eager - exported|
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asrkit.inference.exported_dir import tensor_spec
from asrkit.models.chunk_by_chunk import input_window

CHECK_CHUNKS = 5          # chunks of the export check (the last one shorter)
CHECK_BATCH = 2
# the step's inputs in order (cnn_cache only for a Conformer); an ONNX graph may drop offset
INPUT_NAMES = ("chunk_feats", "offset", "att_cache", "cnn_cache")


def initial_caches(layers: int, batch: int, att_shape: tuple[int, int],
                   cnn_shape: tuple[int, int] | None) -> tuple[torch.Tensor, ...]:
    """The stacked caches before the first chunk: att_cache (layers, batch, heads, 0,
    2*d_head) from att_shape (heads, 2*d_head), and with a convolution cnn_cache of zeros
    (layers, batch, *cnn_shape)."""
    heads, width = att_shape
    caches = (torch.zeros(layers, batch, heads, 0, width),)
    if cnn_shape is not None:
        caches += (torch.zeros(layers, batch, *cnn_shape),)
    return caches


class EncoderChunkGraph(nn.Module):
    """``encoder.forward_chunk`` with stacked caches (module docstring)."""

    def __init__(self, encoder: nn.Module, bins: int, chunk_size: int, left_chunks: int,
                 layers: int, att_shape: tuple[int, int], cnn_shape: tuple[int, int] | None,
                 ) -> None:
        """bins: input features per frame; layers: cache entries (one per attention layer);
        att_shape: (heads, 2 d_head); cnn_shape: (kernel - 1, d), None for an encoder
        without convolutions."""
        super().__init__()
        self.encoder, self.bins = encoder, bins
        self.chunk_size, self.left_chunks = chunk_size, left_chunks
        self.layers, self.att_shape, self.cnn_shape = layers, att_shape, cnn_shape

    @classmethod
    def for_encoder(cls, encoder: nn.Module, bins: int, chunk_size: int,
                    left_chunks: int = -1) -> EncoderChunkGraph:
        """The graph of ``encoder`` (eval; ``bins`` input features per frame) at
        ``chunk_size`` encoder frames per chunk and ``left_chunks`` chunks of left context;
        a ValueError naming what cannot stack."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size: must be >= 1 encoder frames, got {chunk_size}")
        if left_chunks < -1:
            raise ValueError(f"left_chunks: must be >= -1 (-1: all), got {left_chunks}")
        probe = torch.zeros(1, input_window(encoder.input_layer, chunk_size)[0], bins)
        with torch.no_grad():
            _, att, cnn = encoder.forward_chunk(probe, 0, [], [], left_chunks)
        if len({(a.size(1), a.size(3)) for a in att}) > 1 or len({c.shape for c in cnn}) > 1:
            raise ValueError(f"encoder: the caches of {type(encoder).__name__}'s layers differ "
                             f"in shape (an MoE-Conformer's shared router embedding has a "
                             f"width of its own) and do not stack into one tensor")
        cnn_shape = (cnn[0].size(1), cnn[0].size(2)) if cnn else None
        return cls(encoder, bins, chunk_size, left_chunks, len(att),
                   (att[0].size(1), att[0].size(3)), cnn_shape).eval()

    def forward(self, chunk_feats: torch.Tensor, offset: torch.Tensor, att_cache: torch.Tensor,
                *cnn_cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """chunk_feats (B, W, F), offset () int64, att_cache (L, B, H, C, 2 d_head),
        [cnn_cache (L, B, k-1, d)] -> (enc (B, Q, d), next att_cache, [next cnn_cache])."""
        att = [att_cache[i] for i in range(self.layers)]
        cnn = [cnn_cache[0][i] for i in range(self.layers)] if cnn_cache else []
        enc, att, cnn = self.encoder.forward_chunk(chunk_feats, offset, att, cnn, -1)
        next_att = torch.stack(att)  # (L, B, H, C + Q, 2 d_head)
        if self.left_chunks == 0:
            next_att = next_att[:, :, :, :0]
        elif self.left_chunks > 0:  # a slice from the end keeps all of a shorter cache
            next_att = next_att[:, :, :, -(self.left_chunks * enc.size(1)):]
        return (enc, next_att, torch.stack(cnn)) if cnn_cache else (enc, next_att)

    def initial_caches(self, batch: int) -> tuple[torch.Tensor, ...]:
        """(att_cache with 0 frames, [cnn_cache of zeros]) before the first chunk."""
        return initial_caches(self.layers, batch, self.att_shape, self.cnn_shape)

    def specs(self) -> tuple[list[dict], list[dict]]:
        """(input specs, output specs), as asrkit.inference.exported_dir records them."""
        layers, (heads, width) = self.layers, self.att_shape
        feats, offset, att, cnn = INPUT_NAMES
        inputs = [tensor_spec(feats, "float32", "batch", "window", self.bins),
                  tensor_spec(offset, "int64"),
                  tensor_spec(att, "float32", layers, "batch", heads, "cache_frames", width)]
        outputs = [tensor_spec("enc", "float32", "batch", "frames", self.encoder.output_dim),
                   tensor_spec("next_att_cache", "float32", layers, "batch", heads,
                         "next_cache_frames", width)]
        if self.cnn_shape is not None:
            inputs.append(tensor_spec(cnn, "float32", layers, "batch", *self.cnn_shape))
            outputs.append(tensor_spec("next_cnn_cache", "float32", layers, "batch",
                                 *self.cnn_shape))
        return inputs, outputs

    def description(self) -> dict[str, Any]:
        """model.json's ``streaming`` entry: the chunk settings and the cache layout."""
        layer = self.encoder.input_layer
        window, stride = input_window(layer, self.chunk_size)
        return {"graph": "encoder_chunk", "chunk_size": self.chunk_size,
                "left_chunks": self.left_chunks, "window": window, "stride": stride,
                "context": layer.right_context + 1, "layers": self.layers,
                "att_cache": list(self.att_shape),
                "cnn_cache": list(self.cnn_shape) if self.cnn_shape is not None else None}

    @torch.no_grad()
    def example_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs of the third chunk of random features (caches of two chunks before it),
        for tracing."""
        feats = _random_feats(self.encoder, self.bins, self.chunk_size, 3, seed)
        window, stride = input_window(self.encoder.input_layer, self.chunk_size)
        offset, caches = 0, self.initial_caches(CHECK_BATCH)
        for number in range(2):
            chunk = feats[:, number * stride: number * stride + window]
            enc, *caches = self(chunk, torch.tensor(offset), *caches)
            offset += enc.size(1)
        return (feats[:, 2 * stride: 2 * stride + window], torch.tensor(offset), *caches)


def _random_feats(encoder: nn.Module, bins: int, chunk_size: int, chunks: int,
                  seed: int) -> torch.Tensor:
    """(CHECK_BATCH, frames, bins) random features for ``chunks`` full chunks and a last
    one of about half a chunk."""
    layer = encoder.input_layer
    window, stride = input_window(layer, chunk_size)
    frames = (chunks - 1) * stride + window + (chunk_size // 2) * layer.factor
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(CHECK_BATCH, frames, bins, generator=generator)


@torch.no_grad()
def compare_chunk_steps(encoder: nn.Module, step: Callable[..., tuple[torch.Tensor, ...]],
                        bins: int, chunk_size: int, left_chunks: int,
                        chunks: int = CHECK_CHUNKS, seed: int = 4) -> float:
    """Largest |eager - exported| over ``chunks`` chunks of random features (the last one
    shorter), each side feeding its own caches back: the encoder output and the caches.
    ``step(chunk_feats, offset, att_cache, [cnn_cache])`` runs the exported graph."""
    graph = EncoderChunkGraph.for_encoder(encoder, bins, chunk_size, left_chunks)
    feats = _random_feats(encoder, bins, chunk_size, chunks, seed)
    window, stride = input_window(encoder.input_layer, chunk_size)
    context = encoder.input_layer.right_context + 1
    att: list[torch.Tensor] = []
    cnn: list[torch.Tensor] = []
    caches, offset, worst = graph.initial_caches(CHECK_BATCH), 0, 0.0
    for start in range(0, feats.size(1) - context + 1, stride):
        chunk = feats[:, start: start + window]
        enc, att, cnn = encoder.forward_chunk(chunk, offset, att, cnn, left_chunks)
        x_enc, *caches = step(chunk, torch.tensor(offset), *caches)
        eager = (enc, torch.stack(att), *((torch.stack(cnn),) if cnn else ()))
        for a, b in zip(eager, (x_enc, *caches), strict=True):
            if a.shape != b.shape:
                return float("inf")
            worst = max(worst, float((a - b).abs().max()) if a.numel() else 0.0)
        offset += enc.size(1)
    return worst
