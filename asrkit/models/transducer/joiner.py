"""Joint network of a transducer (Graves 2012, eq. 11 with the tanh hidden layer of Graves,
Mohamed & Hinton 2013): the encoder frame and the prediction network's output are projected
to ``joint_dim``, added, passed through tanh and mapped to the vocabulary (blank included).

    z(t, u) = W_out tanh(W_enc f_t + W_pred g_u + b) + b_out

The projections are separate methods so that a search projects the encoder output once per
utterance and the prediction output once per new label, and ``forward`` only adds,
squashes and maps (broadcasting: (B, T, 1, J) + (B, 1, U + 1, J) for training, (N, J) +
(N, J) for a search step). The prediction projection has no bias: b is the encoder's.
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.models.linear import Linear


class Joiner(nn.Module):
    def __init__(self, encoder_dim: int, prediction_dim: int, vocab_size: int,
                 joint_dim: int = 512) -> None:
        super().__init__()
        self.vocab_size, self.joint_dim = vocab_size, joint_dim
        self.prediction_dim = prediction_dim
        self.encoder_proj = Linear(encoder_dim, joint_dim)
        self.prediction_proj = nn.Linear(prediction_dim, joint_dim, bias=False)
        self.output = Linear(joint_dim, vocab_size)

    def project_encoder(self, enc: torch.Tensor) -> torch.Tensor:
        """(..., encoder_dim) -> (..., joint_dim)."""
        return self.encoder_proj(enc)

    def project_prediction(self, pred: torch.Tensor) -> torch.Tensor:
        """(..., prediction_dim) -> (..., joint_dim)."""
        return self.prediction_proj(pred)

    def forward(self, enc_proj: torch.Tensor, pred_proj: torch.Tensor) -> torch.Tensor:
        """Projected encoder and prediction outputs, broadcastable to (..., joint_dim) ->
        logits (..., vocab_size)."""
        return self.output(torch.tanh(enc_proj + pred_proj))
