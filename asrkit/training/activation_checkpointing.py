"""Activation checkpointing (Chen et al. 2016): keep only each layer's input in the forward
pass and recompute the layer in backward, trading ~30 % more compute for activation memory
that no longer grows with depth.

Applied to every layer of ``model.encoder.layers`` and ``model.decoder.layers`` by replacing
the layer's bound ``forward`` with a checkpointed call (torch.utils.checkpoint, non-reentrant,
RNG state preserved so dropout masks repeat), so the module tree, parameter names and
checkpoints are unchanged. Only active when gradients are being computed. The recompute
runs a layer's batch norms in training mode a second time, which would update their
running statistics twice a step: they are put back as the first pass left them
(``_KeepRunningStats``), so the weights and the buffers equal a run without checkpointing.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class _KeepRunningStats:
    """Around the recompute: the running statistics of the batch norms ``norms`` as they
    were before it, restored after it."""

    def __init__(self, norms: list[nn.Module]) -> None:
        self.norms = norms
        self.saved: list[list[torch.Tensor]] = []

    def __enter__(self) -> None:
        self.saved = [[b.clone() for b in self._buffers(m)] for m in self.norms]

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for module, saved in zip(self.norms, self.saved, strict=True):
                for buffer, value in zip(self._buffers(module), saved, strict=True):
                    buffer.copy_(value)
        self.saved = []

    @staticmethod
    def _buffers(module: nn.Module) -> list[torch.Tensor]:
        return [b for b in (module.running_mean, module.running_var, module.num_batches_tracked)
                if b is not None]


def _checkpointed(forward: Any, layer: nn.Module) -> Any:
    norms = [m for m in layer.modules()
             if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]

    def contexts() -> tuple[Any, Any]:
        return contextlib.nullcontext(), (_KeepRunningStats(norms) if norms
                                          else contextlib.nullcontext())

    def run(*args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled():
            return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts,
                              **kwargs)
        return forward(*args, **kwargs)

    return run


def enable_activation_checkpointing(model: nn.Module) -> int:
    """Checkpoint the layers of ``model``'s encoder and decoder stacks; returns how many."""
    count = 0
    for part in (getattr(model, "encoder", None), getattr(model, "decoder", None)):
        layers = getattr(part, "layers", None)
        if isinstance(layers, nn.ModuleList):
            for layer in layers:
                layer.forward = _checkpointed(layer.forward, layer)
                count += 1
    return count
