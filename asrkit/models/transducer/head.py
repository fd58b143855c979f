"""Transducer head: the prediction network, the joiner and the loss as the one component a
joint model holds next to its CTC head and attention decoder (any encoder: it reads
``(enc (B, T', D), enc_lens (B,))``).

Training::

    head = TransducerHead(LSTMPredictionNetwork(vocab, 640),
                          Joiner(encoder_dim, 640, vocab, joint_dim=640),
                          max_joint_elements=2**26)
    out = head(enc, enc_lens, tokens, token_lens)     # {"loss_transducer": scalar}

``loss_transducer`` is -log P(y | x) summed over the utterances and divided by their number
(the per-utterance mean, as asrkit's CTC loss and torchaudio's reduction "mean"; not a
per-token mean). ``max_joint_elements`` bounds the joint's memory exactly
(asrkit.models.transducer.loss); ``score`` gives log P(y | x) per utterance (rescoring).

Decoding interface (asrkit.decoding.transducer_*): states are tuples of tensors with the
hypothesis dimension first; a search projects the encoder output once, feeds the blank start
symbol, then alternates joints and prediction steps::

    enc_proj = head.project_encoder(enc)                         # (B, T', J)
    state = head.initial_state(N, device)
    pred, state = head.predict(torch.full((N,), head.blank_id), state)   # (N, J)
    log_probs = head.joint(enc_proj[:, t], pred)                 # (N, V), fp32
    pred, state = head.advance(labels, state, pred, emitted)     # only rows that emitted
    state = head.select_state(state, parent)                     # beam reordering
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.models.transducer.joiner import Joiner
from asrkit.models.transducer.loss import joint_loss, utterance_losses
from asrkit.models.transducer.state_rows import State, advance_rows, select_state


class TransducerHead(nn.Module):
    def __init__(self, prediction: nn.Module, joiner: Joiner, blank_id: int = 0,
                 max_joint_elements: int | None = None) -> None:
        """prediction: a prediction network (``forward``, ``initial_state``, ``step``,
        ``output_dim``, ``vocab_size``); max_joint_elements: the joint's memory budget per
        chunk of utterances in elements (None: the whole batch at once)."""
        super().__init__()
        if prediction.output_dim != joiner.prediction_dim:
            raise ValueError(f"transducer prediction network output_dim {prediction.output_dim}"
                             f" != joiner prediction_dim {joiner.prediction_dim}")
        if prediction.vocab_size != joiner.vocab_size:
            raise ValueError(f"transducer prediction network vocab_size {prediction.vocab_size}"
                             f" != joiner vocab_size {joiner.vocab_size}")
        if not 0 <= blank_id < joiner.vocab_size or prediction.blank_id != blank_id:
            raise ValueError(f"transducer blank_id {blank_id}: outside the vocabulary of "
                             f"{joiner.vocab_size} or not the prediction network's "
                             f"start symbol {prediction.blank_id}")
        self.prediction, self.joiner = prediction, joiner
        self.blank_id, self.vocab_size = blank_id, joiner.vocab_size
        self.max_joint_elements = max_joint_elements

    def forward(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor,
                token_lens: torch.Tensor) -> dict[str, torch.Tensor]:
        """enc (B, T', D), enc_lens (B,) (each >= 1), tokens (B, U) (anything past
        token_lens is padding, e.g. -1), token_lens (B,) -> {"loss_transducer": scalar}."""
        enc_proj, pred_proj, targets, enc_lens, token_lens = self._lattice_inputs(
            enc, enc_lens, tokens, token_lens)
        total = joint_loss(self.joiner, enc_proj, pred_proj, targets, enc_lens, token_lens,
                           self.blank_id, self.max_joint_elements)
        return {"loss_transducer": total / enc.size(0)}

    @torch.no_grad()
    def score(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor,
              token_lens: torch.Tensor) -> torch.Tensor:
        """As ``forward``'s arguments -> (B,) log P(y | x) per utterance, in fp32 (within
        ``max_joint_elements`` too; e.g. to rescore an N-best)."""
        enc_proj, pred_proj, targets, enc_lens, token_lens = self._lattice_inputs(
            enc, enc_lens, tokens, token_lens)
        return -utterance_losses(self.joiner, enc_proj, pred_proj, targets, enc_lens,
                                 token_lens, self.blank_id, self.max_joint_elements)

    def _lattice_inputs(self, enc: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor,
                        token_lens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Inputs cut to the longest utterance and transcript (the loss wants no more), the
        token padding replaced by blank, both sides projected to the joint dimension."""
        if bool((enc_lens < 1).any()):
            raise ValueError(f"transducer loss needs >= 1 encoder frame per utterance, got "
                             f"enc_lens {enc_lens.tolist()}")
        enc_lens, token_lens = enc_lens.to(enc.device), token_lens.to(enc.device)
        t_max, u_max = int(enc_lens.max()), int(token_lens.max())
        tokens = tokens[:, :u_max].to(enc.device)
        positions = torch.arange(u_max, device=enc.device)
        targets = tokens.masked_fill(positions >= token_lens[:, None], self.blank_id)
        enc_proj = self.joiner.project_encoder(enc[:, :t_max])  # (B, T, J)
        pred_proj = self.joiner.project_prediction(self.prediction(targets))  # (B, U + 1, J)
        return enc_proj, pred_proj, targets, enc_lens, token_lens

    # decoding interface

    def project_encoder(self, enc: torch.Tensor) -> torch.Tensor:
        """(B, T', D) -> (B, T', J): once per utterance, before a search."""
        return self.joiner.project_encoder(enc)

    def initial_state(self, batch: int, device: torch.device) -> State:
        """The prediction network's state for ``batch`` rows, before the start symbol."""
        return self.prediction.initial_state(batch, device)

    def predict(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (N,) the last label per row (the blank start symbol first) ->
        (projected prediction output (N, J), the next state)."""
        out, state = self.prediction.step(tokens, state)
        return self.joiner.project_prediction(out), state

    def advance(self, tokens: torch.Tensor, state: State, pred: torch.Tensor,
                emitted: torch.Tensor) -> tuple[torch.Tensor, State]:
        """``predict`` for the rows where ``emitted`` (N,) is True only (a row that took a
        blank keeps its prediction); pred (N, J) the current projected outputs."""
        return advance_rows(self.predict, tokens, state, pred, emitted)

    def joint(self, enc_proj: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Projected encoder frames and prediction outputs, broadcastable (e.g. (N, J) and
        (N, J)) -> log-probabilities (..., V) in fp32."""
        return torch.log_softmax(self.joiner(enc_proj, pred).float(), dim=-1)

    select_state = staticmethod(select_state)
