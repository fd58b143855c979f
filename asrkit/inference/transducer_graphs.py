"""The transducer's exported graphs (``asrkit export``): the three calls a transducer search
makes (asrkit.models.transducer.head's decoding interface), each traced on its own, so that a
search runs them one step at a time (asrkit.inference.exported_transducer):

    encoder_projection   enc (batch, frames, D) -> enc_proj (batch, frames, J)
    prediction           tokens (hyps,), state_0 .. state_k -> pred (hyps, J),
                         next_state_0 .. next_state_k        (one prediction-network step)
    joiner               enc_proj (hyps, J), pred (hyps, J) -> log_probs (hyps, V) (fp32)

The prediction network's state is whatever tuple of tensors it keeps (an LSTM's h and c, a
stateless network's last labels), each with the hypothesis axis first; model.json records
each tensor's dtype, shape and initial value (``state_description``), so that the exported
model starts a search without the PyTorch model.

    specs = transducer_graph_specs(model.transducer, encoder_dim)    # name -> (module, in, out)
    inputs = transducer_example_inputs(model.transducer, enc)        # name -> example inputs
    diffs = compare_transducers(model.transducer, exported.transducer, enc, x_enc, enc_lens)

``compare_transducers`` is the export check: projected frames, prediction outputs over
several steps, and joint log-probabilities of every valid frame against a few prediction
outputs, eager against exported (largest absolute differences).
"""

from __future__ import annotations

import torch
from torch import nn

from asrkit.inference.exported_dir import tensor_spec
from asrkit.models.mask import padding_mask

DTYPE_NAMES = {torch.float32: "float32", torch.int64: "int64"}
CHECK_STEPS = 6   # prediction steps compared by the export check


class EncoderProjectionGraph(nn.Module):
    """TransducerHead.project_encoder."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        return self.head.project_encoder(enc)  # (B, T', J)


class PredictionGraph(nn.Module):
    """TransducerHead.predict: one step of the prediction network, projected."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, tokens: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred, next_state = self.head.predict(tokens, tuple(state))  # (N, J), state
        return (pred, *next_state)


class JoinerGraph(nn.Module):
    """TransducerHead.joint: projected frames and prediction outputs -> log-probabilities."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, enc_proj: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return self.head.joint(enc_proj, pred)  # (N, V) fp32


def state_description(head: nn.Module) -> list[dict]:
    """Per state tensor: dtype, shape after the hypothesis axis, the value it starts at."""
    described = []
    for tensor in head.initial_state(1, torch.device("cpu")):
        if tensor.dtype not in DTYPE_NAMES:
            raise ValueError(f"transducer state of dtype {tensor.dtype} cannot be exported")
        values = tensor.flatten().unique()
        if values.numel() > 1:
            raise ValueError("transducer initial state is not one value repeated; it cannot "
                             "be described in model.json")
        described.append({"dtype": DTYPE_NAMES[tensor.dtype], "shape": list(tensor.shape[1:]),
                          "fill": float(values[0]) if values.numel() else 0.0})
    return described


def transducer_graph_specs(head: nn.Module, encoder_dim: int
                           ) -> dict[str, tuple[nn.Module, list, list]]:
    """name -> (module in eval mode, input specs, output specs) of the three graphs."""
    joint, vocab = head.joiner.joint_dim, head.vocab_size
    state = state_description(head)
    state_in = [tensor_spec(f"state_{i}", s["dtype"], "hyps", *s["shape"])
                for i, s in enumerate(state)]
    state_out = [tensor_spec(f"next_state_{i}", s["dtype"], "hyps", *s["shape"])
                 for i, s in enumerate(state)]
    return {
        "encoder_projection": (EncoderProjectionGraph(head).eval(),
                               [tensor_spec("enc", "float32", "batch", "frames", encoder_dim)],
                               [tensor_spec("enc_proj", "float32", "batch", "frames", joint)]),
        "prediction": (PredictionGraph(head).eval(), [tensor_spec("tokens", "int64", "hyps"),
                                                      *state_in],
                       [tensor_spec("pred", "float32", "hyps", joint), *state_out]),
        "joiner": (JoinerGraph(head).eval(), [tensor_spec("enc_proj", "float32", "hyps", joint),
                                              tensor_spec("pred", "float32", "hyps", joint)],
                   [tensor_spec("log_probs", "float32", "hyps", vocab)]),
    }


def transducer_example_inputs(head: nn.Module, enc: torch.Tensor,
                              seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Inputs of the three graphs: the encoder output ``enc`` (B, T', D), and ``2B`` rows of
    prediction states after one random label each (so that no row is the initial state)."""
    generator = torch.Generator().manual_seed(seed)
    rows = 2 * enc.size(0)
    with torch.no_grad():
        enc_proj = head.project_encoder(enc)  # (B, T', J)
        start = torch.full((rows,), head.blank_id, dtype=torch.long)
        _, state = head.predict(start, head.initial_state(rows, torch.device("cpu")))
        tokens = torch.randint(0, head.vocab_size, (rows,), generator=generator)
        pred, _ = head.predict(tokens, state)
    frames = enc_proj[:, 0].repeat(2, 1)  # (2B, J)
    return {"encoder_projection": (enc,), "prediction": (tokens, *state),
            "joiner": (frames, pred)}


@torch.no_grad()
def compare_transducers(eager: nn.Module, exported, enc: torch.Tensor, x_enc: torch.Tensor,
                        enc_lens: torch.Tensor, seed: int = 3) -> dict[str, float]:
    """Largest |eager - exported| of the projected encoder output (valid frames; the eager
    head on the eager encoder's ``enc``, the exported one on the exported encoder's
    ``x_enc``), the prediction outputs and states over CHECK_STEPS steps of random labels
    (two rows per utterance), and the joint's log-probabilities of every valid frame with
    two rows' prediction output at each step."""
    generator = torch.Generator().manual_seed(seed)
    valid = padding_mask(enc_lens, enc.size(1))  # (B, T')
    proj, x_proj = eager.project_encoder(enc), exported.project_encoder(x_enc)
    diffs = {"encoder_projection": _max_abs(proj[valid], x_proj[valid])}
    rows = 2 * enc.size(0)
    tokens = torch.full((rows,), eager.blank_id, dtype=torch.long)
    state = eager.initial_state(rows, torch.device("cpu"))
    x_state = exported.initial_state(rows, torch.device("cpu"))
    pred_diff, joint_diff = 0.0, 0.0
    frames = proj[valid]  # (F, J) every valid frame
    for _ in range(CHECK_STEPS):
        pred, state = eager.predict(tokens, state)
        x_pred, x_state = exported.predict(tokens, x_state)
        pred_diff = max(pred_diff, _max_abs(pred, x_pred),
                        *(_max_abs(a, b) for a, b in zip(state, x_state)))
        for row in (0, rows - 1):  # every frame against two rows' prediction output
            joint_diff = max(joint_diff, _max_abs(
                eager.joint(frames, pred[row].expand(frames.size(0), -1)),
                exported.joint(x_proj[valid], x_pred[row].expand(frames.size(0), -1))))
        tokens = torch.randint(1, eager.vocab_size, (rows,), generator=generator)
    diffs["prediction"] = pred_diff
    diffs["joint_log_probs"] = joint_diff
    return diffs


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| (0 for empty tensors, e.g. the state of a context-1 stateless network)."""
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
