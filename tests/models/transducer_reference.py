"""Independent references for the transducer tests (models and decoding): the forward
algorithm over the T x (U + 1) lattice written out cell by cell in log space (Graves 2012,
eqs. 16-18), the lattice of one utterance computed unbatched from the full-sequence
prediction network, and tiny random transducer heads."""

from __future__ import annotations

import torch

from asrkit.models.transducer.head import TransducerHead
from asrkit.models.transducer.joiner import Joiner
from asrkit.models.transducer.lstm_prediction import LSTMPredictionNetwork
from asrkit.models.transducer.stateless_prediction import StatelessPredictionNetwork


def forward_algorithm_nll(log_probs: torch.Tensor, labels: list[int] | tuple[int, ...],
                          blank: int = 0) -> torch.Tensor:
    """log_probs (T, U + 1, V) of one utterance -> -log P(labels | x) (differentiable).

    alpha(t, u) = logaddexp(alpha(t - 1, u) + blank(t - 1, u), alpha(t, u - 1) + y_u(t, u - 1)),
    alpha(0, 0) = 0;  log P = alpha(T - 1, U) + blank(T - 1, U)."""
    frames, positions = log_probs.size(0), len(labels) + 1
    assert log_probs.size(1) == positions
    alpha: dict[tuple[int, int], torch.Tensor] = {}
    for t in range(frames):
        for u in range(positions):
            if t == 0 and u == 0:
                alpha[t, u] = log_probs.new_zeros(())
                continue
            terms = []
            if t > 0:
                terms.append(alpha[t - 1, u] + log_probs[t - 1, u, blank])
            if u > 0:
                terms.append(alpha[t, u - 1] + log_probs[t, u - 1, labels[u - 1]])
            alpha[t, u] = torch.logsumexp(torch.stack(terms), dim=0)
    return -(alpha[frames - 1, positions - 1] + log_probs[frames - 1, positions - 1, blank])


def lattice_log_probs(head: TransducerHead, enc: torch.Tensor,
                      labels: list[int] | tuple[int, ...]) -> torch.Tensor:
    """enc (T, D) of one utterance, its labels -> (T, U + 1, V) float64 log-probabilities,
    from the prediction network's full-sequence forward on this utterance alone."""
    with torch.no_grad():
        pred = head.prediction(torch.tensor([list(labels)], dtype=torch.long))  # (1, U + 1, P)
        enc_proj = head.joiner.project_encoder(enc)[:, None]  # (T, 1, J)
        logits = head.joiner(enc_proj, head.joiner.project_prediction(pred[0])[None])
    return logits.double().log_softmax(-1)  # (T, U + 1, V)


def tiny_head(vocab_size: int = 5, prediction: str = "lstm", seed: int = 0,
              encoder_dim: int = 6, dim: int = 8, joint_dim: int = 10, sharpen: float = 1.0,
              blank_bias: float = 0.0, context_size: int = 2,
              max_joint_elements: int | None = None) -> TransducerHead:
    """A random head in eval mode (no dropout). ``sharpen`` scales the output layer (peaky
    distributions, as a trained model's); ``blank_bias`` is added to the blank logit (a
    trained model emits mostly blanks, so that greedy search stops at a frame)."""
    torch.manual_seed(seed)
    if prediction == "lstm":
        network = LSTMPredictionNetwork(vocab_size, dim, dropout=0.0)
    else:
        network = StatelessPredictionNetwork(vocab_size, dim, context_size, groups=2)
    head = TransducerHead(network, Joiner(encoder_dim, dim, vocab_size, joint_dim),
                          max_joint_elements=max_joint_elements)
    with torch.no_grad():
        head.joiner.output.weight.mul_(sharpen)
        head.joiner.output.bias.mul_(sharpen)
        head.joiner.output.bias[head.blank_id] += blank_bias
    return head.eval()


class BigramHead:
    """A stand-in for TransducerHead (its decoding interface only) whose lattice is known in
    closed form: log p(· | t, y) = log_softmax(frame_logits[t] + label_logits[last of y]),
    the last label of the empty y being the blank start symbol. The encoder output a search
    gets is ``frame_logits`` itself, (B, T, V)."""

    blank_id = 0
    advance = TransducerHead.advance
    select_state = staticmethod(TransducerHead.select_state)

    def __init__(self, label_logits: torch.Tensor) -> None:
        self.label_logits = label_logits  # (V, V): row = the last label

    def project_encoder(self, enc: torch.Tensor) -> torch.Tensor:
        return enc

    def initial_state(self, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, dtype=torch.long, device=device),)

    def predict(self, tokens: torch.Tensor, state: tuple[torch.Tensor, ...]):
        return self.label_logits[tokens], (tokens,)

    def joint(self, enc_proj: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return (enc_proj + pred).float().log_softmax(-1)

    def lattice(self, frame_logits: torch.Tensor,
                labels: list[int] | tuple[int, ...]) -> torch.Tensor:
        """frame_logits (T, V) -> (T, U + 1, V) float64 log-probabilities of ``labels``."""
        last = torch.tensor([self.blank_id, *labels])
        return (frame_logits[:, None] + self.label_logits[last][None]).double().log_softmax(-1)


def trained_like_bigram(frames: int, vocab: int, seed: int, batch: int = 1, peak: float = 3.0,
                        blank_after_label: float = 5.0,
                        label_noise: float = 0.5) -> tuple[torch.Tensor, BigramHead]:
    """(frame_logits (batch, T, V), head) shaped like a trained model's output: each frame
    favours one symbol (by ``peak``; blank half of the time) and after a label the blank is
    favoured (by ``blank_after_label``), so that labels seldom repeat on a frame."""
    gen = torch.Generator().manual_seed(seed)
    frame_logits = torch.randn(batch, frames, vocab, generator=gen)
    favoured = torch.randint(1, vocab, (batch, frames), generator=gen)
    favoured = favoured.masked_fill(torch.rand(batch, frames, generator=gen) < 0.5, 0)
    frame_logits.scatter_add_(2, favoured[:, :, None], torch.full((batch, frames, 1), peak))
    label_logits = label_noise * torch.randn(vocab, vocab, generator=gen)
    label_logits[1:, 0] += blank_after_label
    return frame_logits, BigramHead(label_logits)
