"""Mixture-of-Experts feed-forward layer (Shazeer et al. 2017; Switch Transformer, Fedus et
al. 2021; as used by SpeechMoE and 3M, You et al. 2022, arXiv 2204.03178).

A linear router maps each frame (optionally concatenated with a shared embedding, as in 3M)
to probabilities p over N experts; the frame goes through its top-k experts and their
outputs are scaled by the router probabilities, not renormalised over the k chosen (for
k = 1 the output is ``p_e * FFN_e(x)``, as Switch and 3M do, which is what lets the router
learn):

    y = sum_{e in topk(p)} p_e * FFN_e(x)

Dispatch is batched per expert: the frames routed to expert e are gathered, pass through
it in one matmul pair, and are scattered back with their weights (a Python loop over the
N experts, never over frames). Padded frames are routed nowhere and come out as zeros.
There is no capacity limit: no frame is dropped. Every expert is called even with no
frames, so each parameter is in the autograd graph (zero gradients for an idle expert) and
DDP needs no ``find_unused_parameters``.

The router runs in fp32 (softmax over experts is sensitive under bf16 autocast).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from asrkit.models.feed_forward import FeedForward


class Routing(NamedTuple):
    """What the balance losses (asrkit.models.moe_losses) need from one MoE layer."""

    probs: torch.Tensor  # (batch, T, num_experts) fp32 router probabilities
    expert_index: torch.Tensor  # (batch, T, top_k) chosen experts
    mask: torch.Tensor  # (batch, T) bool, True = routed (valid) frame


class MoEFeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, num_experts: int = 8, top_k: int = 1,
                 dropout: float = 0.1, activation: str = "swish",
                 router_extra_dim: int = 0) -> None:
        """d_model: frame size; ffn_dim: hidden size of each expert;
        router_extra_dim: size of the shared embedding concatenated to the router's input
        (0: the router sees the layer input only)."""
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k: must be in 1..num_experts ({num_experts}), got {top_k}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.router_extra_dim = router_extra_dim
        self.router = nn.Linear(d_model + router_extra_dim, num_experts)
        self.experts = nn.ModuleList(
            FeedForward(d_model, ffn_dim, dropout, activation) for _ in range(num_experts))

    def expert_parameters(self) -> int:
        """Parameters of one expert (all experts have the same shape)."""
        return sum(p.numel() for p in self.experts[0].parameters())

    def route(self, x: torch.Tensor, mask: torch.Tensor,
              router_extra: torch.Tensor | None = None) -> Routing:
        """x (batch, T, d), mask (batch, T) bool, router_extra (batch, T, extra) or None."""
        if (router_extra is None) != (self.router_extra_dim == 0):
            raise ValueError(f"MoEFeedForward: router_extra_dim is {self.router_extra_dim} "
                             f"but router_extra is {'missing' if router_extra is None else 'given'}")
        router_in = x if router_extra is None else torch.cat([x, router_extra], dim=-1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.router(router_in.float())  # (batch, T, num_experts)
        probs = logits.softmax(dim=-1)
        expert_index = probs.topk(self.top_k, dim=-1).indices  # (batch, T, top_k)
        return Routing(probs, expert_index, mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                router_extra: torch.Tensor | None = None) -> tuple[torch.Tensor, Routing]:
        """x (batch, T, d_model), mask (batch, T) bool (True = valid frame), router_extra
        (batch, T, router_extra_dim) or None -> (y (batch, T, d_model), routing)."""
        routing = self.route(x, mask, router_extra)
        batch, time, dim = x.shape
        x_flat = x.reshape(batch * time, dim)  # (M, d)
        weights = routing.probs.gather(-1, routing.expert_index)  # (batch, T, top_k)
        weights = weights.reshape(batch * time, self.top_k)
        index = routing.expert_index.reshape(batch * time, self.top_k)
        # padded frames choose no expert
        index = index.masked_fill(~mask.reshape(batch * time, 1), -1)
        y = torch.zeros_like(x_flat)  # (M, d)
        for e, expert in enumerate(self.experts):
            rows, slots = (index == e).nonzero(as_tuple=True)  # frames routed to e
            out = expert(x_flat[rows])  # (n_e, d)
            scale = weights[rows, slots].unsqueeze(-1)  # (n_e, 1)
            y = y.index_add(0, rows, (out * scale).to(y.dtype))
        return y.view(batch, time, dim), routing
