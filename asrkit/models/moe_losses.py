"""Load-balancing losses of a Mixture-of-Experts layer, over the valid (unpadded) frames.

- Switch (Fedus et al. 2021, arXiv 2101.03961, eq. 4-6): ``alpha * N * sum_i f_i * P_i``,
  f_i the share of routed frames sent to expert i (for top-k: share of the k·frames
  assignments), P_i the mean router probability of expert i. It is alpha when routing is
  uniform, and at least alpha for any routing whose f and P agree.
- SpeechMoE (You et al. 2021, arXiv 2105.03036; weights 0.15/0.15 in 3M):
  sparsity ``L_s = mean_frames || p / ||p||_2 ||_1`` (1 for one-hot p, sqrt(N) for uniform p:
  pushes each frame to one expert) and mean-importance ``L_m = N * sum_j (mean_i p_ij)^2``
  (1 when the experts share the frames equally, N when one takes everything).

``balance_losses`` averages each over the MoE layers of an encoder (so a weight does not
depend on the depth) and returns the weighted sum plus the terms to log, with the share
of frames each expert takes.

    from asrkit.models.moe_losses import switch_loss
    loss = switch_loss(routing.probs, routing.expert_index, routing.mask, alpha=0.01)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from asrkit.models.moe import Routing


def _valid_rows(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(..., N) probabilities and (...) mask -> (M, N) probabilities of the valid frames."""
    return probs[mask]


def expert_load(expert_index: torch.Tensor, mask: torch.Tensor, num_experts: int) -> torch.Tensor:
    """(..., k) chosen experts and (...) mask -> (num_experts,) share of the valid frames'
    assignments each expert received (sums to 1; zeros if no frame is valid)."""
    chosen = expert_index[mask].reshape(-1)  # (M*k,)
    counts = torch.bincount(chosen, minlength=num_experts).to(torch.float32)
    return counts / counts.sum().clamp(min=1.0)


def switch_loss(probs: torch.Tensor, expert_index: torch.Tensor, mask: torch.Tensor,
                alpha: float = 1.0) -> torch.Tensor:
    """probs (..., N), expert_index (..., k), mask (...) bool -> alpha * N * sum_i f_i P_i."""
    num_experts = probs.size(-1)
    load = expert_load(expert_index, mask, num_experts)  # f: (N,), no gradient
    valid = _valid_rows(probs.float(), mask)  # (M, N)
    mean_prob = valid.sum(0) / max(valid.size(0), 1)  # P: (N,)
    return alpha * num_experts * (load * mean_prob).sum()


def sparsity_loss(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """probs (..., N), mask (...) bool -> mean over valid frames of ||p / ||p||_2||_1."""
    valid = _valid_rows(probs.float(), mask)  # (M, N)
    per_frame = valid.abs().sum(-1) / valid.norm(dim=-1).clamp(min=1e-12)  # (M,)
    return per_frame.sum() / max(valid.size(0), 1)


def importance_loss(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """probs (..., N), mask (...) bool -> N * sum_j (mean over valid frames of p_j)^2."""
    valid = _valid_rows(probs.float(), mask)  # (M, N)
    importance = valid.sum(0) / max(valid.size(0), 1)  # (N,)
    return probs.size(-1) * importance.pow(2).sum()


def balance_losses(routings: Sequence[Routing], switch_weight: float = 0.0,
                   sparsity_weight: float = 0.0, importance_weight: float = 0.0,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Routings of the MoE layers -> (weighted sum of the layer-averaged losses, terms).

    Terms (unweighted, for logging): loss_moe_switch (with alpha = 1), loss_moe_sparsity,
    loss_moe_importance, loss_moe (the weighted sum), moe_load_expert<i> (share of frames
    expert i takes, averaged over layers) and moe_max_load (the largest share any expert
    takes in any layer: 1/N is perfect balance)."""
    if not routings:
        raise ValueError("balance_losses: no MoE layer")
    num = len(routings)
    switch = sum(switch_loss(r.probs, r.expert_index, r.mask) for r in routings) / num
    sparsity = sum(sparsity_loss(r.probs, r.mask) for r in routings) / num
    importance = sum(importance_loss(r.probs, r.mask) for r in routings) / num
    num_experts = routings[0].probs.size(-1)
    loads = torch.stack([expert_load(r.expert_index, r.mask, num_experts)
                         for r in routings])  # (layers, N)
    weighted = (switch_weight * switch + sparsity_weight * sparsity
                + importance_weight * importance)
    terms = {"loss_moe": weighted.detach(), "loss_moe_switch": switch.detach(),
             "loss_moe_sparsity": sparsity.detach(),
             "loss_moe_importance": importance.detach(), "moe_max_load": loads.max()}
    for i, load in enumerate(loads.mean(0)):
        terms[f"moe_load_expert{i}"] = load
    return weighted, terms
