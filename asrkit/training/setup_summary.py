"""The lines a training run logs once it is set up: the experiment's size, the data of
epoch 1, the learning-rate schedule's length, device and precision."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def log_setup(trainer: Any) -> None:
    """``trainer``: an asrkit.training.trainer.Trainer once set up (not imported: it imports
    this module)."""
    tcfg = trainer.tcfg
    params = sum(p.numel() for p in trainer.model.parameters())
    log.info("experiment %s: %s parameters, vocabulary %d", trainer.exp_dir, f"{params:,}",
             trainer.config["vocab_size"])
    log.info("train: %d utterances; epoch 1: %d batches per rank, %d updates (accum_grad "
             "%d; later epochs may differ by a few batches); dev: %d utterances",
             len(trainer.train_loader.dataset), len(trainer.train_loader),
             trainer.updates_per_epoch, tcfg["accum_grad"], len(trainer.dev_loader.dataset))
    if hasattr(trainer.state.scheduler, "total_steps"):
        log.info("learning-rate schedule over %d updates (%s)", trainer.total_steps,
                 schedule_length_source(trainer.config))
    log.info("device %s, precision %s, %d process(es)%s%s", trainer.device,
             trainer.precision.name, trainer.ctx.world_size,
             ", torch.compile" if tcfg["compile"] else "",
             ", activation checkpointing" if tcfg["activation_checkpointing"] else "")


def schedule_length_source(config: dict[str, Any]) -> str:
    """Where the schedule's number of updates comes from, for the log."""
    if config["scheduler"].get("total_steps"):
        return "scheduler.total_steps"
    return f"trainer.max_epochs={config['trainer']['max_epochs']} x epoch 1's updates"
