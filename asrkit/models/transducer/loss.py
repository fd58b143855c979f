"""Transducer loss (Graves 2012): -log P(y | x), the sum over every alignment of the label
sequence y to the T encoder frames, computed by ``torchaudio.functional.rnnt_loss`` (the
forward-backward recursion over the T x (U + 1) lattice, with the log-softmax fused in:
it takes logits). The logits are cast to fp32 and the loss runs with autocast off, so a
bf16 step computes the joint's matmuls in bf16 and the lattice in fp32.

Memory. The joint's logits are a (B, T, U + 1, V) tensor, and training keeps several of
that size (the tanh hidden layer (B, T, U + 1, J), the logits, their gradient); at
B = 8, T = 250, U = 60, V = 1024 that is 125M elements per copy. ``joint_loss`` with
``max_joint_elements`` bounds it exactly:

- the utterances are grouped into chunks whose joint (utterances x longest T x longest
  U + 1 in the chunk, times J + V elements per lattice cell) fits the budget; an utterance
  that alone exceeds it is a chunk of its own, and each chunk is cut to its own longest
  utterance, so that grouping by size also removes most padding;
- in the forward pass, chunk by chunk, the joint and the loss are computed and at once
  differentiated with respect to the chunk's projected encoder and prediction outputs and
  the joiner's parameters; the chunk's lattice is then freed, and only gradients of the
  size of the inputs (B, T, J), (B, U + 1, J) and of the parameters are kept;
- the backward pass multiplies those gradients by the incoming one.

Each utterance's loss and its gradient come from the same computation as without chunks
(the chunks are disjoint sets of utterances): only the order in which the parameter
gradients of the chunks are summed differs (tested equal to the all-at-once computation,
values and gradients). Gradients are computed in the forward pass even if no backward
follows, unless gradients are off (``torch.no_grad``, e.g. validation), when the chunks'
losses are simply computed one after the other. With fp16 and a gradient scaler, the
chunk's gradients are computed before the scale is applied (in the backward pass), so the
scaler does not protect them from underflow inside the joint; bf16 needs no scaler.

Under ``torch.compile`` the joint and the loss run eagerly (a graph break): torchaudio's
loss has no kernel for compile's shape propagation, and the chunks depend on the lengths.
"""

from __future__ import annotations

import torch
from torch import nn
from torchaudio.functional import rnnt_loss


@torch.compiler.disable  # torchaudio's op has no fake-tensor kernel: run it eagerly
def rnnt_loss_fp32(logits: torch.Tensor, targets: torch.Tensor, logit_lens: torch.Tensor,
                   target_lens: torch.Tensor, blank_id: int = 0) -> torch.Tensor:
    """logits (B, T, U + 1, V) with T = max(logit_lens) and U = max(target_lens), targets
    (B, U) valid ids -> (B,) per-utterance -log P(y | x) in fp32."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return rnnt_loss(logits.float().contiguous(), targets.int(), logit_lens.int(),
                         target_lens.int(), blank=blank_id, reduction="none")


@torch.compiler.disable  # data-dependent chunks and the loss: eager under torch.compile
def joint_loss(joiner: nn.Module, enc_proj: torch.Tensor, pred_proj: torch.Tensor,
               targets: torch.Tensor, enc_lens: torch.Tensor, target_lens: torch.Tensor,
               blank_id: int = 0, max_joint_elements: int | None = None) -> torch.Tensor:
    """The summed loss over the utterances (a scalar in fp32).

    joiner: maps (enc_proj (…, T, 1, J), pred_proj (…, 1, U + 1, J)) to logits (…, V) and
    has ``joint_dim`` and ``vocab_size``; enc_proj (B, T, J) with T = max(enc_lens);
    pred_proj (B, U + 1, J) and targets (B, U) valid ids with U = max(target_lens);
    max_joint_elements: the joint's budget per chunk (module docstring), None for all
    utterances at once."""
    chunks = _chunks(joiner, enc_proj, targets, enc_lens, target_lens, max_joint_elements)
    inputs = (enc_proj, pred_proj, targets, enc_lens, target_lens)
    params = tuple(p for p in joiner.parameters() if p.requires_grad)
    needs_grad = torch.is_grad_enabled() and (
        enc_proj.requires_grad or pred_proj.requires_grad or bool(params))
    if max_joint_elements is None or not needs_grad:
        return sum(_chunk_losses(joiner, inputs, chunk, blank_id).sum() for chunk in chunks)
    return _ChunkedJointLoss.apply(joiner, chunks, blank_id, *inputs, *params)


@torch.compiler.disable
@torch.no_grad()
def utterance_losses(joiner: nn.Module, enc_proj: torch.Tensor, pred_proj: torch.Tensor,
                     targets: torch.Tensor, enc_lens: torch.Tensor, target_lens: torch.Tensor,
                     blank_id: int = 0, max_joint_elements: int | None = None) -> torch.Tensor:
    """As ``joint_loss``, without gradients -> (B,) per-utterance -log P(y | x) in fp32,
    chunk by chunk within the budget (for scoring, e.g. an N-best)."""
    chunks = _chunks(joiner, enc_proj, targets, enc_lens, target_lens, max_joint_elements)
    inputs = (enc_proj, pred_proj, targets, enc_lens, target_lens)
    losses = torch.empty(enc_proj.size(0), dtype=torch.float32, device=enc_proj.device)
    for chunk in chunks:
        losses[chunk[0]] = _chunk_losses(joiner, inputs, chunk, blank_id)
    return losses


def _chunks(joiner: nn.Module, enc_proj: torch.Tensor, targets: torch.Tensor,
            enc_lens: torch.Tensor, target_lens: torch.Tensor,
            max_joint_elements: int | None) -> list[tuple[torch.Tensor, int, int]]:
    """(utterance indices, longest T, longest U) per chunk; one chunk without a budget."""
    device = enc_proj.device
    if max_joint_elements is None:
        return [(torch.arange(enc_proj.size(0), device=device), enc_proj.size(1),
                 targets.size(1))]
    return [(torch.tensor(group, device=device), t_max, u_max)
            for group, t_max, u_max in plan_chunks(enc_lens.tolist(), target_lens.tolist(),
                                                   joiner.joint_dim + joiner.vocab_size,
                                                   max_joint_elements)]


def plan_chunks(enc_lens: list[int], target_lens: list[int], cell_size: int,
                max_elements: int) -> list[tuple[list[int], int, int]]:
    """Utterances in chunks of (indices, longest T, longest U) such that
    len(indices) x longest T x (longest U + 1) x cell_size <= max_elements, except for an
    utterance that exceeds it alone. Largest lattices first, each chunk filled greedily."""
    if max_elements < 1:
        raise ValueError(f"max_joint_elements must be >= 1, got {max_elements}")
    order = sorted(range(len(enc_lens)), key=lambda b: -enc_lens[b] * (target_lens[b] + 1))
    chunks: list[tuple[list[int], int, int]] = []
    for b in order:
        if chunks:
            group, t_max, u_max = chunks[-1]
            t_new, u_new = max(t_max, enc_lens[b]), max(u_max, target_lens[b])
            if (len(group) + 1) * t_new * (u_new + 1) * cell_size <= max_elements:
                chunks[-1] = (group + [b], t_new, u_new)
                continue
        chunks.append(([b], enc_lens[b], target_lens[b]))
    return chunks


def _chunk_losses(joiner: nn.Module, inputs: tuple[torch.Tensor, ...],
                  chunk: tuple[torch.Tensor, int, int], blank_id: int) -> torch.Tensor:
    """(n,) losses of the chunk's utterances, its lattice cut to its longest T and U."""
    enc_proj, pred_proj, targets, enc_lens, target_lens = inputs
    index, t_max, u_max = chunk
    logits = joiner(enc_proj[index, :t_max, None], pred_proj[index, None, : u_max + 1])
    return rnnt_loss_fp32(logits, targets[index, :u_max], enc_lens[index],
                          target_lens[index], blank_id)  # logits: (n, T, U + 1, V)


class _ChunkedJointLoss(torch.autograd.Function):
    """Summed loss whose gradients are computed chunk by chunk in the forward pass."""

    @staticmethod
    def forward(ctx, joiner: nn.Module, chunks: list[tuple[torch.Tensor, int, int]],
                blank_id: int, enc_proj: torch.Tensor, pred_proj: torch.Tensor,
                targets: torch.Tensor, enc_lens: torch.Tensor, target_lens: torch.Tensor,
                *params: torch.Tensor) -> torch.Tensor:
        enc_grad, pred_grad = torch.zeros_like(enc_proj), torch.zeros_like(pred_proj)
        param_grads: list[torch.Tensor | None] = [None] * len(params)
        total = torch.zeros((), dtype=torch.float32, device=enc_proj.device)
        for chunk in chunks:
            index, t_max, u_max = chunk
            enc_part = enc_proj.detach()[index].requires_grad_()  # (n, T, J), own graph
            pred_part = pred_proj.detach()[index].requires_grad_()  # (n, U + 1, J)
            with torch.enable_grad():
                inputs = (enc_part, pred_part, targets[index], enc_lens[index],
                          target_lens[index])
                local = (torch.arange(len(index), device=index.device), t_max, u_max)
                loss = _chunk_losses(joiner, inputs, local, blank_id).sum()
                grads = torch.autograd.grad(loss, (enc_part, pred_part, *params),
                                            allow_unused=True)
            enc_grad[index] = grads[0]
            pred_grad[index] = grads[1]
            for i, grad in enumerate(grads[2:]):
                if grad is not None:
                    param_grads[i] = grad if param_grads[i] is None else param_grads[i] + grad
            total += loss.detach()
        ctx.save_for_backward(enc_grad, pred_grad, *param_grads)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        enc_grad, pred_grad, *param_grads = ctx.saved_tensors
        scaled = [None if g is None else grad_total * g for g in param_grads]
        return (None, None, None, grad_total * enc_grad, grad_total * pred_grad,
                None, None, None, *scaled)
