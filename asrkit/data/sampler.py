"""A bucketing batch sampler with a padded-frame budget, for one process or many (DDP).

Every batch satisfies `len(batch) * max(lengths in batch) <= max_frames` (the padded
size, as WeNet's `max_frames_in_batch`), so memory is bounded whatever the length
distribution. Utterances are sorted into `num_buckets` length buckets, shuffled within a
bucket and packed greedily, which keeps padding low.

Under DDP all ranks build the same global batch list from (seed, epoch); consecutive
batches of similar length are grouped `world_size` at a time and rank r takes the r-th
of each group, so ranks get disjoint utterances, the same number of batches (no rank
waits on another at the end of an epoch) and similar lengths at each step. The at most
`world_size - 1` batches that do not fill a group are left out of that epoch; which
ones changes every epoch.

`position` counts the batches of the current epoch already consumed; `__iter__` starts
there. It is advanced by the consumer (`ResumableLoader` in asrkit.data.loader), not by
`__iter__`, because a DataLoader reads ahead of what the training loop has used.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)


class BucketingBatchSampler:
    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int,
        num_buckets: int = 30,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        name: str = "sampler",
    ):
        if max_frames <= 0:
            raise ValueError(f"sampler.max_frames must be > 0, got {max_frames}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_frames = max_frames
        self.num_buckets = max(1, num_buckets)
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.name = name  # in messages: the manifest's file name
        self.epoch = 0
        self.position = 0
        too_long = np.flatnonzero(self.lengths > max_frames)
        self.excluded = too_long.tolist()
        if len(too_long):
            log.warning("%s: %d utterance(s) longer than data.sampler.max_frames=%d are left "
                        "out", name, len(too_long), max_frames)
        self._cache: tuple[int, list[list[int]], str] | None = None  # epoch, mine, hash

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its first batch."""
        self.epoch = epoch
        self.position = 0

    def _global_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        candidates = np.setdiff1d(np.arange(len(self.lengths)), self.excluded)
        if self.shuffle:
            candidates = rng.permutation(candidates)
        ordered = candidates[np.argsort(self.lengths[candidates], kind="stable")]
        buckets = np.array_split(ordered, min(self.num_buckets, max(len(ordered), 1)))
        if self.shuffle:
            buckets = [rng.permutation(bucket) for bucket in buckets]
        # packed in one pass over the buckets in length order, so only the last batch of the
        # epoch is short (a batch may straddle two neighbouring buckets of similar lengths)
        return self._pack(np.concatenate(buckets) if buckets else ordered)

    def _pack(self, bucket: np.ndarray) -> list[list[int]]:
        """Greedy packing in the given order under the padded-frame budget."""
        batches, current, longest = [], [], 0
        for index in bucket.tolist():
            length = int(self.lengths[index])
            if current and (len(current) + 1) * max(longest, length) > self.max_frames:
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, length)
        if current:
            batches.append(current)
        return batches

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, in order."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        batches = self._global_batches()
        made = len(batches)
        left_over = len(batches) % self.world_size
        if left_over:  # also unshuffled: else the same longest utterances every epoch
            # The batches that fill no group of world_size are left out this epoch. The
            # list runs in length order, so its tail would leave out the longest utterances
            # every epoch: leave out seeded random ones instead, keeping the order (a
            # group's batches stay of neighbouring lengths).
            rng = np.random.default_rng([self.seed, self.epoch, 2])
            out = set(rng.choice(len(batches), left_over, replace=False).tolist())
            batches = [b for i, b in enumerate(batches) if i not in out]
        groups = [batches[i:i + self.world_size]
                  for i in range(0, len(batches) - self.world_size + 1, self.world_size)]
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 1])
            groups = [groups[i] for i in rng.permutation(len(groups))]
        mine = [group[self.rank] for group in groups]
        if not mine and made:
            log.warning("%s: %d batch(es) cannot feed %d ranks", self.name, made,
                        self.world_size)
        digest = hashlib.sha1()  # of every rank's batches: the same on each rank
        for batch in batches:
            digest.update(np.asarray(batch, dtype=np.int64).tobytes() + b";")
        self._cache = (self.epoch, mine, digest.hexdigest()[:16])
        return mine

    def _fingerprint(self) -> str:
        """A hash of the current epoch's batches on every rank (their utterance indices):
        the same on each rank, so that any rank can check rank 0's saved state."""
        self.rank_batches()
        return self._cache[2]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches()[self.position:]

    def __len__(self) -> int:
        return len(self.rank_batches())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "world_size": self.world_size, "batches": self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the state's position; ValueError (the caller restarts the epoch) when
        this epoch's batches are not those the position counts: another seed or number of
        ranks, or other batches (``max_frames``, the data or its filters changed)."""
        if state["seed"] != self.seed or state["world_size"] != self.world_size:
            raise ValueError(
                f"sampler state is for seed {state['seed']} on {state['world_size']} ranks, "
                f"not seed {self.seed} on {self.world_size}: exact resume needs the same"
            )
        epoch, self.epoch = self.epoch, state["epoch"]
        recorded = state.get("batches")  # absent in checkpoints of earlier versions
        if (recorded is not None and recorded != self._fingerprint()) or \
                state["position"] > len(self.rank_batches()):
            self.epoch = epoch
            raise ValueError(f"the batches of epoch {state['epoch']} differ from the "
                             "checkpoint's (data.sampler.max_frames, the data or its filters "
                             "changed)")
        self.position = state["position"]
