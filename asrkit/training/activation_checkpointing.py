"""Activation checkpointing (Chen et al. 2016): keep only each layer's input in the forward
pass and recompute the layer in backward, trading ~30 % more compute for activation memory
that no longer grows with depth.

Applied to every layer of ``model.encoder.layers`` and ``model.decoder.layers`` by replacing
the layer's bound ``forward`` with a checkpointed call (torch.utils.checkpoint, non-reentrant,
RNG state preserved so dropout masks repeat), so the module tree, parameter names and
checkpoints are unchanged. Only active when gradients are being computed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _checkpointed(forward: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, **kwargs)
        return forward(*args, **kwargs)

    return run


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Checkpoint the layers of ``model``'s encoder and decoder stacks; returns how many."""
    count = 0
    for part in (getattr(model, "encoder", None), getattr(model, "decoder", None)):
        layers = getattr(part, "layers", None)
        if isinstance(layers, nn.ModuleList):
            for layer in layers:
                layer.forward = _checkpointed(layer.forward)
                count += 1
    return count
