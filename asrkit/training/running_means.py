"""Running means of the model's scalar terms over the micro-batches since ``start``, for
the log lines and the epoch's metrics.

The sums stay on the device: adding a micro-batch is three tensor ops (its terms stacked,
zeroed when its loss was not finite, added to the sum of its key set) and no host-device
synchronisation; ``means`` reads every sum in one copy. Frames are summed from the CPU
lengths the loader gives, so the rates need no device either.

    interval = RunningMeans()
    interval.add(out, batch, finite)         # finite: 0-d bool on the device
    interval.means(ctx)                      # {"loss": ..., "loss_ctc": ...} (a sync)
    interval.rates()                         # input frames and utterances per second

Under DDP ``means(ctx)`` is a collective (every rank calls it at the same point): the means
and the rates are over every rank's micro-batches, as the dev metrics are.
"""

from __future__ import annotations

import time

import torch

from asrkit.training.distributed import DistributedContext, gather_objects


class RunningMeans:
    def __init__(self) -> None:
        # per key set: the sums of its terms, then the count of finite micro-batches
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}
        self.batches = self.utterances = 0  # micro-batches added, and their utterances
        self._frames: torch.Tensor | int = 0  # a CPU tensor once added to
        self._seen = (0, 0)  # frames and utterances as of the last means(): all ranks'
        self.carried: tuple[dict[str, float], float] = ({}, 0.0)  # sums and count (carry)
        self.start = time.monotonic()

    def add(self, out: dict[str, torch.Tensor], batch: dict, finite: torch.Tensor) -> None:
        """The scalar terms of ``out``; they count only if ``finite`` (its loss was finite:
        otherwise its update is skipped)."""
        keys = tuple(k for k, v in out.items() if torch.is_tensor(v) and v.numel() == 1)
        terms = torch.stack([*(out[k].detach().reshape(()).to(torch.float64) for k in keys),
                             finite.to(torch.float64)])  # (terms + 1,)
        terms = torch.where(finite, terms, 0.0)
        self.sums[keys] = terms if keys not in self.sums else self.sums[keys] + terms
        self.batches += 1
        self._frames = self._frames + batch["feat_lens"].sum()  # CPU lengths from the loader
        self.utterances += len(batch["ids"])

    @property
    def frames(self) -> int:
        return int(self._frames)

    def means(self, ctx: DistributedContext | None = None) -> dict[str, float]:
        """Each term's mean over the finite micro-batches (the sum over every term's key
        set, divided by the count of all finite micro-batches), of every rank under DDP
        (``ctx``; then also the frames and utterances ``rates`` counts)."""
        totals, count = self._gathered(ctx)
        return {k: total / count for k, total in totals.items()} if count else {}

    def totals(self, ctx: DistributedContext | None = None) -> dict:
        """The sums and the count ``means`` divides them by (every rank's), for a checkpoint
        written mid-epoch: ``carry`` them into the resumed epoch's means."""
        totals, count = self._gathered(ctx)
        return {"sums": totals, "count": count}

    def carry(self, saved: dict) -> None:
        """Count ``totals()`` of an earlier part of the epoch (on one rank only: ``means``
        adds every rank's)."""
        self.carried = (dict(saved["sums"]), float(saved["count"]))

    def _gathered(self, ctx: DistributedContext | None) -> tuple[dict[str, float], float]:
        totals, count = dict(self.carried[0]), self.carried[1]
        if self.sums:
            values = torch.cat(list(self.sums.values())).tolist()  # the one copy to the host
            at = 0
            for keys in self.sums:
                for key, value in zip(keys, values[at: at + len(keys)], strict=True):
                    totals[key] = totals.get(key, 0.0) + value
                count += values[at + len(keys)]
                at += len(keys) + 1
        self._seen = (self.frames, self.utterances)
        if ctx is not None and ctx.is_distributed:
            ranks = gather_objects((totals, count, *self._seen), ctx)
            totals, count = {}, sum(rank[1] for rank in ranks)
            for rank_totals, *_ in ranks:
                for key, value in rank_totals.items():
                    totals[key] = totals.get(key, 0.0) + value
            self._seen = (sum(rank[2] for rank in ranks), sum(rank[3] for rank in ranks))
        return totals, count

    def rates(self) -> dict[str, float]:
        """Input frames and utterances per second, as counted by the last ``means``: every
        rank's under DDP."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        frames, utterances = self._seen
        return {"frames_per_s": frames / elapsed, "utts_per_s": utterances / elapsed}
