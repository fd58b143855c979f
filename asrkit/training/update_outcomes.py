"""What the host learns about each optimiser update only when it reads the device.

Whether a loss or a gradient norm is finite is known on the device. The trainer does not
wait for it: an update with a non-finite loss or gradient norm is made a no-op on the
device (asrkit.training.optimizer_step) and the host carries on as if it had been made.
This records, per update, what the host will need to know later: each micro-batch's loss
and whether it was finite (on every rank), and the update's gradient norm. ``read`` is the
one host-device synchronisation: all pending values in one copy, at a log line, a
checkpoint or the end of an epoch; the step then counts the skips in order, as if it had
looked at every update (asrkit.training.train_step.TrainStep.settle).

    outcomes.add(nonfinite, loss, batch)     # per micro-batch; nonfinite: 0-d bool, device
    outcomes.nonfinite_loss()               # this update's micro-batches OR-ed (device)
    outcomes.close(norm, counts_grad=True)  # after the optimiser step; norm None: dropped
    for update in outcomes.read(): ...      # the one sync
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def batch_shape(batch: dict) -> str:
    return f"feats {tuple(batch['feats'].shape)}, tokens {tuple(batch['tokens'].shape)}"


def batch_ids(batch: dict, most: int = 4) -> str:
    ids = list(batch.get("ids") or [])
    more = f" and {len(ids) - most} more" if len(ids) > most else ""
    return "utterances " + ", ".join(ids[:most]) + more


@dataclass
class MicroBatchOutcome:
    nonfinite: bool  # its loss was NaN/inf on some rank
    loss: float      # its loss on this rank
    shape: str       # batch_shape
    ids: str         # batch_ids


@dataclass
class UpdateOutcome:
    micro_batches: list[MicroBatchOutcome] = field(default_factory=list)
    norm: float | None = None  # the gradient norm; None: dropped on the host, no step made
    counts_grad: bool = True   # a non-finite norm skips and counts (False: the GradScaler's)

    @property
    def attempted(self) -> bool:
        """The optimiser step ran (perhaps as a no-op on the device)."""
        return self.norm is not None

    @property
    def nonfinite_loss(self) -> bool:
        return any(mb.nonfinite for mb in self.micro_batches)


@dataclass
class _Pending:
    """One update's device values until they are read."""

    micro_batches: list[tuple[torch.Tensor, torch.Tensor, str, str]] = field(default_factory=list)
    norm: torch.Tensor | None = None
    counts_grad: bool = True


class UpdateOutcomes:
    def __init__(self) -> None:
        self._current = _Pending()
        self._nonfinite: torch.Tensor | None = None  # the current update's, OR-ed
        self._closed: list[_Pending] = []

    def add(self, nonfinite: torch.Tensor, loss: torch.Tensor, batch: dict) -> None:
        """A micro-batch whose backward pass ran: ``nonfinite`` (0-d bool) and ``loss``
        (0-d) on the device."""
        self._current.micro_batches.append((nonfinite, loss.detach(), batch_shape(batch),
                                            batch_ids(batch)))
        self._nonfinite = nonfinite if self._nonfinite is None else self._nonfinite | nonfinite

    def nonfinite_loss(self) -> torch.Tensor | None:
        """Whether a micro-batch of the current update had a non-finite loss (0-d bool on
        the device), or None when none was added."""
        return self._nonfinite

    def close(self, norm: torch.Tensor | None, counts_grad: bool = True) -> None:
        """End the current update: its optimiser step ran with gradient norm ``norm``, or
        (None) the host dropped it before any step."""
        self._current.norm, self._current.counts_grad = norm, counts_grad
        self._closed.append(self._current)
        self._current, self._nonfinite = _Pending(), None

    @property
    def attempted(self) -> int:
        """Closed, unread updates whose optimiser step ran."""
        return sum(p.norm is not None for p in self._closed)

    def read(self) -> list[UpdateOutcome]:
        """The closed updates, in order, with their device values read (one copy)."""
        closed, self._closed = self._closed, []
        tensors = [t for p in closed for flag, loss, _, _ in p.micro_batches for t in (flag, loss)]
        tensors += [p.norm for p in closed if p.norm is not None]
        values = iter(_to_host(tensors))
        outcomes = []
        for p in closed:
            batches = [MicroBatchOutcome(bool(next(values)), next(values), shape, ids)
                       for _, _, shape, ids in p.micro_batches]
            outcomes.append(UpdateOutcome(batches, None, p.counts_grad))
        for outcome, p in zip(outcomes, closed, strict=True):
            if p.norm is not None:
                outcome.norm = next(values)
        return outcomes


def _to_host(tensors: list[torch.Tensor]) -> list[float]:
    """0-d tensors -> floats, in one copy from the device (the first tensor's)."""
    if not tensors:
        return []
    device = tensors[0].device
    return torch.stack([t.reshape(()).to(device, torch.float64) for t in tensors]).tolist()
