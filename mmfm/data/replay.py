"""Replay for continued pretraining: a fixed share of every batch drawn from the original domain's rows
while a run continues on new rows (`tasks.<name>.data.replay`), against forgetting.

Map-style rows: `ReplayBatchSampler` composes each global batch of `G = batch x processes` rows from the new
rows (one seeded permutation per epoch, as `EpochBatchSampler`) and `round(share x G)` replay rows on average
(the count per batch spread by rounding the running total, so any number of batches holds the share to within
one row). Replay rows cycle through seeded permutations of their own, so the whole original set is replayed
over the run, not one fixed sample of it. Everything is a function of (seed, epoch, batch), so a resumed run
draws exactly what the first would have. An epoch is one pass over the new rows.

Streams: `mix_streams` interleaves the new stream with an endlessly repeated, shuffled replay stream, each row
drawn from the replay stream with probability `share` (`datasets.interleave_datasets`, seeded); the epoch ends
with the new stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from datasets import Dataset, IterableDataset, concatenate_datasets, interleave_datasets

from .bad_rows import CARRIER_COLUMNS

# Replay permutations are seeded apart from the new rows' (`seed + epoch`), so the two orders never coincide.
REPLAY_SEED_OFFSET = 1_000_003
_SEED_MODULUS = 2**63 - 1


def replay_rows_before(batch: int, share: float, global_batch: int) -> int:
    """Replay rows in the first `batch` global batches of an epoch: the running total rounded, so batch i holds
    `replay_rows_before(i + 1) - replay_rows_before(i)` of them."""
    return math.floor(batch * share * global_batch + 0.5)


def batches_per_epoch(num_new: int, share: float, global_batch: int) -> int:
    """Complete global batches one pass over `num_new` new rows fills (each batch's tail being replay rows)."""

    def new_rows(batches: int) -> int:
        return batches * global_batch - replay_rows_before(batches, share, global_batch)

    count = max(0, int(num_new / (global_batch * (1 - share))) - 1)
    while new_rows(count + 1) <= num_new:
        count += 1
    while count > 0 and new_rows(count) > num_new:
        count -= 1
    return count


class ReplayBatchSampler:
    """Per-process batches of indices into `concatenate_datasets([new, replay])` (new rows first) for one epoch.

    Global batch i of epoch e holds the next `G - k_i` rows of the new rows' permutation for epoch e (seeded
    `seed + e`) and the next `k_i` rows of the endless replay sequence (permutation q seeded
    `seed + REPLAY_SEED_OFFSET + q`), shuffled together (seeded by seed, epoch and i) and sliced by rank.
    """

    def __init__(
        self, num_new: int, num_replay: int, batch_size: int, rank: int, world_size: int, seed: int, epoch: int,
        start: int, share: float,
    ):  # fmt: skip
        if num_replay < 1:
            raise ValueError("The replay data holds no rows.")
        self.num_new, self.num_replay, self.batch_size = num_new, num_replay, batch_size
        self.rank, self.world_size, self.seed, self.epoch, self.start = rank, world_size, seed, epoch, start
        self.share = share
        self.global_batch = batch_size * world_size
        self.batches = batches_per_epoch(num_new, share, self.global_batch)

    def __len__(self) -> int:
        return max(0, self.batches - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        g = self.global_batch
        order = torch.randperm(self.num_new, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        replay_per_epoch = replay_rows_before(self.batches, self.share, g)
        permutations: dict[int, torch.Tensor] = {}
        for index in range(self.start, self.batches):
            before, after = (replay_rows_before(i, self.share, g) for i in (index, index + 1))
            new_begin = index * g - before
            new = order[new_begin : new_begin + g - (after - before)].tolist()
            cursor = self.epoch * replay_per_epoch + before
            replay = [
                self.num_new + self._replay_index(p, permutations)
                for p in range(cursor, cursor + after - before)
            ]
            mixed = new + replay
            shuffle = torch.randperm(g, generator=torch.Generator().manual_seed(self._batch_seed(index)))
            mine = shuffle[self.rank * self.batch_size : (self.rank + 1) * self.batch_size].tolist()
            yield [mixed[i] for i in mine]

    def _replay_index(self, position: int, permutations: dict[int, torch.Tensor]) -> int:
        cycle, offset = divmod(position, self.num_replay)
        if cycle not in permutations:
            permutations.clear()  # batches move forward: an older cycle is never needed again
            seed = self.seed + REPLAY_SEED_OFFSET + cycle
            permutations[cycle] = torch.randperm(
                self.num_replay, generator=torch.Generator().manual_seed(seed)
            )
        return int(permutations[cycle][offset])

    def _batch_seed(self, index: int) -> int:
        return ((self.seed * REPLAY_SEED_OFFSET + self.epoch) * REPLAY_SEED_OFFSET + index) % _SEED_MODULUS


def align_replay(replay, like, where: str):
    """`replay` with exactly the columns (and, map-style, the features) of `like`, so the two concatenate or
    interleave: missing carrier columns (counts of skipped rows) are added as zero counts.

    Raises:
        ValueError: the replay rows lack a column the new rows have (naming both column lists).
    """
    columns = list(like.column_names or [])
    present = list(replay.column_names or columns)
    for carrier, empty in zip(CARRIER_COLUMNS, (0, "")):
        if carrier in columns and carrier not in present and isinstance(replay, Dataset):
            replay = replay.add_column(carrier, [empty] * len(replay))
            present.append(carrier)
    missing = [c for c in columns if c not in present]
    if missing:
        raise ValueError(
            f"`{where}` rows lack column(s) {missing} that the training rows have ({columns}): replay data of the "
            "same modality and columns as `data.source`."
        )
    if columns:
        replay = replay.select_columns(columns)
    if isinstance(replay, Dataset) and isinstance(like, Dataset) and replay.features != like.features:
        replay = replay.cast(like.features)
    return replay


def concatenate_replay(new: Dataset, replay: Dataset, where: str) -> Dataset:
    """`new` then `replay` (aligned) in one map-style dataset: `ReplayBatchSampler`'s index space."""
    return concatenate_datasets([new, align_replay(replay, new, where)])


def mix_streams(
    new: IterableDataset, replay: IterableDataset, share: float, seed: int, shuffle_buffer: int, where: str
) -> IterableDataset:
    """Each row drawn from `replay` (shuffled, repeated without end) with probability `share`, else from `new`;
    the stream ends with `new`. Seeded: every process and every resumed run sees the same mixture."""
    replay = align_replay(replay, new, where).shuffle(
        seed=seed + REPLAY_SEED_OFFSET, buffer_size=shuffle_buffer
    )
    return interleave_datasets(
        [new, replay.repeat(None)],
        probabilities=[1 - share, share],
        seed=seed,
        stopping_strategy="first_exhausted",
    )


__all__ = [
    "REPLAY_SEED_OFFSET",
    "ReplayBatchSampler",
    "align_replay",
    "batches_per_epoch",
    "concatenate_replay",
    "mix_streams",
    "replay_rows_before",
]
