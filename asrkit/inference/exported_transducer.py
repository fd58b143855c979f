"""An exported transducer (``asrkit export``) behind the decoding interface of
asrkit.models.transducer.head.TransducerHead, so that asrkit's transducer searches
(asrkit.decoding.transducer_greedy, _modified_beam, _beam) run on it unchanged:

    head = ExportedTransducerHead(graphs, info.transducer)     # graphs: name -> runner
    enc_proj = head.project_encoder(enc)                       # (B, T', J)
    state = head.initial_state(N, device)                      # from model.json
    pred, state = head.predict(tokens, state)                  # one prediction step
    log_probs = head.joint(enc_proj[:, t], pred)               # (N, V), fp32
    pred, state = head.advance(labels, state, pred, emitted)   # only the rows that emitted
    state = head.select_state(state, parent)

Each call runs one graph (asrkit.inference.transducer_graphs) with onnxruntime or
TorchScript (asrkit.inference.exported_model's runners); inputs and outputs are CPU torch
tensors, states tuples of tensors with the hypothesis axis first, as the eager head's.
"""

from __future__ import annotations

from typing import Any

import torch

from asrkit.models.transducer.state_rows import State, advance_rows, select_state

DTYPES = {"float32": torch.float32, "int64": torch.int64}


class ExportedTransducerHead:
    def __init__(self, graphs: dict[str, Any], description: dict[str, Any],
                 vocab_size: int) -> None:
        """graphs: ``encoder_projection``, ``prediction`` and ``joiner`` runners (called
        with tensors, returning a tuple of tensors); description: model.json's
        ``transducer`` entry (``blank_id``, ``state``: [{dtype, shape, fill}])."""
        self.projection = graphs["encoder_projection"]
        self.prediction = graphs["prediction"]
        self.joiner = graphs["joiner"]
        self.blank_id, self.vocab_size = int(description["blank_id"]), vocab_size
        self.state_layout = [(DTYPES[s["dtype"]], tuple(s["shape"]), s["fill"])
                             for s in description["state"]]

    def project_encoder(self, enc: torch.Tensor) -> torch.Tensor:
        """(B, T', D) -> (B, T', J)."""
        return self.projection(enc.float())[0]

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        """The prediction network's state for ``batch`` rows, before the start symbol."""
        return tuple(torch.full((batch, *shape), fill, dtype=dtype)
                     for dtype, shape, fill in self.state_layout)

    def predict(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (N,) the last label per row -> (projected prediction output (N, J), the
        next state)."""
        out = self.prediction(tokens.long(), *state)
        return out[0], tuple(out[1:])

    def advance(self, tokens: torch.Tensor, state: State, pred: torch.Tensor,
                emitted: torch.Tensor) -> tuple[torch.Tensor, State]:
        """``predict`` for the rows where ``emitted`` (N,) is True only; the other rows keep
        their prediction output and state (as TransducerHead.advance)."""
        return advance_rows(self.predict, tokens, state, pred, emitted)

    def joint(self, enc_proj: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Projected frames and prediction outputs, broadcastable to (..., J) ->
        log-probabilities (..., V) in fp32 (the graph takes rows: (N, J) each)."""
        enc_proj, pred = torch.broadcast_tensors(enc_proj.float(), pred.float())
        lead = enc_proj.shape[:-1]
        log_probs = self.joiner(enc_proj.reshape(-1, enc_proj.size(-1)),
                                pred.reshape(-1, pred.size(-1)))[0]  # (N, V)
        return log_probs.view(*lead, log_probs.size(-1))

    select_state = staticmethod(select_state)
