"""Optimiser builders: Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019).

A config names a builder with ``_target_`` and gives its arguments flat
(``conf/optim/{adam,adamw}.yaml``); the trainer passes the model itself:

    optimizer = adamw(model, lr=1e-3, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.01)

AdamW applies weight decay to weight matrices and embeddings only: biases and the gains of
LayerNorm/BatchNorm (every parameter with fewer than 2 dimensions) are not decayed, as in
most Transformer recipes. Adam's ``weight_decay`` is the L2 term added to the gradient
(ESPnet/WeNet use 0). With the Noam schedule ``lr`` is overwritten at every step. The
annotated signatures are the ``optim`` section's schema (asrkit.config.targets checks a
config against them before building).

Both use torch's fused kernel (one kernel over all parameters, ``fused=True``) when every
parameter lives on a device that has one (CUDA, and the CPU since torch 2.4: 4-5x faster
there than the per-tensor loop on a 46M-parameter Conformer, where torch's ``foreach`` path
is slower still), and torch's default (``foreach`` on a GPU) otherwise; the update is the
same. The fused kernel also takes ``found_inf``, which lets the trainer skip a non-finite
update on the device without reading the gradient norm (asrkit.training.optimizer_step).
The optimiser is built after the model is on its device, as the trainer does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from asrkit.arg_types import Ge, Lt, NonNegativeFloat, PositiveFloat

Beta = Annotated[float, Ge(0), Lt(1)]


def _beta_pair(betas: Sequence[float]) -> tuple[float, float]:
    if len(betas) != 2:
        raise ValueError(f"optim.betas: must be two numbers in [0, 1), got {list(betas)}")
    return float(betas[0]), float(betas[1])


def kernel_options(params: Sequence[torch.Tensor]) -> dict[str, bool]:
    """``{"fused": True}`` if torch has a fused Adam/AdamW kernel for the device of every
    (floating-point) parameter, else ``{}`` (torch's default: foreach on a GPU)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        supported = set(_get_fused_kernels_supported_devices())
    except ImportError:  # a private helper: fall back to the devices known to have one
        supported = {"cpu", "cuda"}
    if params and all(p.is_floating_point() and p.device.type in supported for p in params):
        return {"fused": True}
    return {}


def adam(model: nn.Module, lr: PositiveFloat = 1e-3, betas: Sequence[Beta] = (0.9, 0.98),
         eps: PositiveFloat = 1e-9, weight_decay: NonNegativeFloat = 0.0) -> torch.optim.Adam:
    """Adam over every trainable parameter of ``model``."""
    beta_pair = _beta_pair(betas)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=beta_pair, eps=eps, weight_decay=weight_decay,
                            **kernel_options(params))


def adamw(model: nn.Module, lr: PositiveFloat = 1e-3, betas: Sequence[Beta] = (0.9, 0.98),
          eps: PositiveFloat = 1e-9, weight_decay: NonNegativeFloat = 0.01) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on parameters of >= 2 dimensions only."""
    beta_pair = _beta_pair(betas)
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=beta_pair, eps=eps,
                             **kernel_options(decay + no_decay))


def build_optimizer(optim_cfg: dict, model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser the ``optim`` config section names (``_target_`` + flat arguments)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from asrkit.config.targets import check_section

    check_section(optim_cfg, "optim", filled_in=("model",))
    try:
        return instantiate(dict(optim_cfg), model=model, _convert_="all")
    except InstantiationException as e:  # Hydra wraps the builder's own error; raise that one
        raise (e.__cause__ if isinstance(e.__cause__, ValueError) else e) from None
