"""Optimiser builders: Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

A config names a builder with ``_target_`` and gives its arguments flat
(``conf/optim/{adam,adamw}.yaml``); the trainer passes the model itself:

    optimizer = adamw(model, lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)

AdamW applies weight decay to weight matrices and embeddings only: biases and the gains of
LayerNorm/BatchNorm (every parameter with fewer than 2 dimensions) are not decayed, as in
most Transformer recipes. Adam's ``weight_decay`` is the L2 term added to the gradient
(ESPnet/WeNet use 0). With the Noam schedule ``lr`` is overwritten at every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _check(lr: float, betas: Sequence[float], eps: float, weight_decay: float) -> tuple:
    if lr <= 0:
        raise ValueError(f"optim.lr: must be > 0, got {lr}")
    listed = isinstance(betas, Sequence) and not isinstance(betas, str)
    numbers = listed and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                             for b in betas)
    if not numbers or len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"optim.betas: must be two numbers in [0, 1), got "
                         f"{list(betas) if listed else betas!r}")
    if eps <= 0:
        raise ValueError(f"optim.eps: must be > 0, got {eps}")
    if weight_decay < 0:
        raise ValueError(f"optim.weight_decay: must be >= 0, got {weight_decay}")
    return float(betas[0]), float(betas[1])


def adam(model: nn.Module, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.98),
         eps: float = 1e-9, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over every trainable parameter of ``model``."""
    beta_pair = _check(lr, betas, eps, weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=beta_pair, eps=eps, weight_decay=weight_decay)


def adamw(model: nn.Module, lr: float = 1e-3, betas: Sequence[float] = (0.9, 0.98),
          eps: float = 1e-9, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on parameters of >= 2 dimensions only."""
    beta_pair = _check(lr, betas, eps, weight_decay)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=beta_pair, eps=eps)


def build_optimizer(optim_cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser the ``optim`` config section names (``_target_`` + flat arguments)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from asrkit.models.build import check_section

    check_section(optim_cfg, "optim", filled_in=("model",))
    try:
        return instantiate(dict(optim_cfg), model=model, _convert_="all")
    except InstantiationException as e:  # Hydra wraps the builder's own error; raise that one
        raise (e.__cause__ if isinstance(e.__cause__, ValueError) else e) from None
