"""The exported streaming encoder step (``asrkit export --streaming``;
asrkit.inference.encoder_chunk_graph) run chunk by chunk with onnxruntime or TorchScript,
the caches fed back from one chunk to the next:

    step = ExportedModel.load("exported/").encoder_chunk      # None without --streaming
    caches = step.initial_caches(batch=1)                      # 0 cached frames, zeros
    enc, *caches = step(chunk_feats, torch.tensor(offset), *caches)
    enc = step.forward_chunk_by_chunk(feats)                   # a whole utterance

The chunk size and left context are the export's (``step.chunk_size``,
``step.left_chunks``; model.json's ``streaming``): each full chunk is ``step.window``
feature frames, consecutive ones ``step.stride`` apart, and the last may be shorter.
Inputs are fed by name, since an ONNX graph leaves out the inputs it does not use (the
``offset`` of an encoder with relative positions; model.json then does not list it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from asrkit.inference.encoder_chunk_graph import INPUT_NAMES, initial_caches


class ExportedEncoderChunk:
    def __init__(self, graph: Any, description: dict[str, Any], outputs: list[dict]) -> None:
        """graph: the runner of ``encoder_chunk`` (asrkit.inference.exported_model's);
        description: model.json's ``streaming`` entry; outputs: the graph's output specs."""
        self.graph = graph
        self.chunk_size, self.left_chunks = description["chunk_size"], description["left_chunks"]
        self.window, self.stride = description["window"], description["stride"]
        self.context, self.layers = description["context"], description["layers"]
        self.att_shape = tuple(description["att_cache"])
        cnn = description["cnn_cache"]
        self.cnn_shape = tuple(cnn) if cnn is not None else None
        # every input the step can take, in __call__'s order (TorchScript: all of them)
        self.input_names = INPUT_NAMES[: 3 if self.cnn_shape is None else 4]
        self.output_dim = int(outputs[0]["shape"][-1])  # enc (batch, frames, d)

    def initial_caches(self, batch: int) -> tuple[torch.Tensor, ...]:
        """(att_cache with 0 frames, [cnn_cache of zeros]) before the first chunk."""
        return initial_caches(self.layers, batch, self.att_shape, self.cnn_shape)

    def __call__(self, chunk_feats: torch.Tensor, offset: torch.Tensor,
                 *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """chunk_feats (B, W, F), offset () int64, the caches -> (enc (B, Q, d), the next
        caches)."""
        inputs = (chunk_feats.float(), offset.long().reshape(()), *caches)
        session = getattr(self.graph, "session", None)
        if session is None:  # TorchScript: every input, in order
            return self.graph(*inputs)
        wanted = {i.name for i in session.get_inputs()}
        feed = {name: np.ascontiguousarray(x.detach().cpu().numpy())
                for name, x in zip(self.input_names, inputs) if name in wanted}
        return tuple(torch.from_numpy(out) for out in session.run(None, feed))

    def forward_chunk_by_chunk(self, feats: torch.Tensor) -> torch.Tensor:
        """feats (B, T, F) without padding -> enc (B, T', d), chunk after chunk."""
        caches, offset, outputs = self.initial_caches(feats.size(0)), 0, []
        for start in range(0, feats.size(1) - self.context + 1, self.stride):
            enc, *caches = self(feats[:, start: start + self.window], torch.tensor(offset),
                                *caches)
            outputs.append(enc)
            offset += enc.size(1)
        if not outputs:  # shorter than one encoder frame, as the eager run_chunk_by_chunk
            return feats.new_zeros(feats.size(0), 0, self.output_dim)
        return torch.cat(outputs, dim=1)
