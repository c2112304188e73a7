"""Batches for training: rows -> processor outputs (bad rows skipped and counted), a seeded per-epoch order
cut into global batches shared over processes, and an endless, resumable stream of them.

Map-style datasets (the demo corpus, files that fit in memory) are shuffled per epoch by a seeded
permutation and cut into global batches of `per_device_batch_size x processes` rows; process r takes the
r-th slice of each, so no row is seen twice in an epoch and one process with batch 2b sees exactly the
rows two processes with batch b see together. The last incomplete global batch of an epoch is dropped.
Streaming datasets are split with `datasets.distributed.split_dataset_by_node` and shuffled through a
buffer, reseeded per epoch with `set_epoch`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from torch.utils.data import DataLoader

from ..modalities import ModalitySpec
from .bad_rows import ROW_INDEX, BadRow, error_text, short_repr
from .replay import ReplayBatchSampler, concatenate_replay, mix_streams

logger = logging.getLogger(__name__)

# What a processor raises for a row it refuses (a bad sample, not a bug of the batch).
PROCESSING_ERRORS = (ValueError, TypeError, OSError, KeyError, IndexError)


class SkippingCollator:
    """What every mmfm `collate_fn` does with bad rows: count the ones rows carry (`CARRIER_COLUMNS`), screen
    each row, process the batch whole and, only when that fails, row by row to drop (and describe) the rows
    the processor refuses; a batch whose every row is fine alone re-raises its error.

    Subclasses set `where`, `on_bad_sample` and `unit` and define `_process(rows)`, `_error(row)` (why the
    processor refuses one row, None when it accepts it), `_describe(position, index, row, error) -> BadRow`
    and `_refuse(refused, cause)` (what `on_bad_sample="raise"` does with refused rows); `_screen` may drop
    rows before processing.
    """

    unit = "row"
    where: str
    on_bad_sample: str

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        skipped, bad, kept = 0, [], []
        for position, row in enumerate(rows):
            skipped += int(row.pop("num_skipped", 0) or 0)
            carried = row.pop("skipped_rows", None)
            if carried:
                bad.append(carried)
            index = row.pop(ROW_INDEX, None)
            screened = self._screen(position, index, row)
            if screened is None:
                kept.append((position, index, row))
            elif screened is not False:  # a bad row found before processing
                self._refuse([screened], None)
                bad.append(screened)
                skipped += 1
        if not kept:
            return self._batch(None, 0, skipped, bad)
        try:
            return self._batch(self._process([row for _, _, row in kept]), len(kept), skipped, bad)
        except PROCESSING_ERRORS as err:
            errors = [(position, index, row, self._error(row)) for position, index, row in kept]
            refused = [self._describe(p, i, row, e) for p, i, row, e in errors if e is not None]
            self._refuse(refused, err)
            if not refused:
                raise  # every row is fine alone: the batch itself is the problem, not a sample
            good = [row for _, _, row, e in errors if e is None]
            logger.warning("Skipped %d bad %s(s) of %s: %s", len(refused), self.unit, self.where, refused[0])
            inputs = self._process(good) if good else None
            return self._batch(inputs, len(good), skipped + len(refused), bad + refused)

    def _screen(self, position: int, index: int | None, row: dict) -> BadRow | bool | None:
        """Before processing: None keeps `row`, False drops it uncounted, a `BadRow` drops and counts it."""
        return None

    @staticmethod
    def _batch(inputs: Any, num_rows: int, num_skipped: int, bad_rows: list) -> dict[str, Any]:
        return {"inputs": inputs, "num_rows": num_rows, "num_skipped": num_skipped, "bad_rows": bad_rows}


class RowCollator(SkippingCollator):
    """DataLoader `collate_fn`: a list of rows -> the batch one task's model needs (before text masking).

    Returns a dict with `inputs` (processor outputs; for tokenized modalities a list of token-id lists,
    corrupted later in the training process with a generator the checkpoint can reproduce), `num_rows`,
    `num_skipped` (rows dropped as bad samples, with those counted before: bad JSON lines and empty texts
    that rows carry in `CARRIER_COLUMNS`) and `bad_rows` (descriptions of some of them: each row this batch
    dropped as a `BadRow`, a carried one as a string). A row the processor refuses is a bad sample: with
    `on_bad_sample="skip"` the batch is retried row by row and only the bad rows are dropped; `"raise"`
    stops with the error of the first bad row. Rows of map-style data name their dataset index (`ROW_INDEX`,
    added by `BatchStream`).
    """

    def __init__(
        self,
        spec: ModalitySpec,
        processor: Any,
        processor_kwargs: dict,
        where: str,
        text_column: str = "text",
        max_length: int | None = None,
        on_bad_sample: str = "skip",
    ):
        self.spec, self.processor, self.processor_kwargs, self.where = (
            spec,
            processor,
            processor_kwargs,
            where,
        )
        self.text_column, self.max_length, self.on_bad_sample = text_column, max_length, on_bad_sample

    def _screen(self, position: int, index: int | None, row: dict) -> bool | None:
        return False if "input_ids" in row and not len(row["input_ids"]) else None  # packing's count carriers

    def _refuse(self, refused: list[BadRow], cause: BaseException | None) -> None:
        if self.on_bad_sample == "raise":
            first = str(refused[0]) if refused else error_text(cause)
            raise ValueError(
                f"A batch of `{self.where}` could not be processed ({first}). Set "
                f"`{self.where}.data.on_bad_sample=skip` to drop and count bad rows instead."
            ) from cause

    def _error(self, row: dict) -> BaseException | None:
        """Why the processor refuses `row` alone (None when it accepts it)."""
        try:
            self._process([dict(row)])
        except PROCESSING_ERRORS as err:
            return err
        return None

    @staticmethod
    def _describe(position: int, index: int | None, row: dict, err: BaseException) -> BadRow:
        columns = list(row)
        column, value = (repr(columns[0]), row[columns[0]]) if len(columns) == 1 else (repr(columns), row)
        where = f"dataset row {index}" if index is not None else None  # streams name the row later
        return BadRow(where, error_text(err), column, short_repr(value), batch_index=position)

    def _process(self, rows: list[dict]) -> Any:
        name = self.spec.name
        if self.spec.tokenized:
            if "input_ids" in rows[0]:  # packed blocks
                return [list(row["input_ids"]) for row in rows]
            texts = [row[self.text_column] for row in rows]
            if any(not isinstance(t, str) or not t.strip() for t in texts):
                raise ValueError(f"empty or non-text value in column {self.text_column!r}")
            kwargs = {"truncation": True, "max_length": self.max_length, "verbose": False}
            return self.processor[name](texts, **kwargs)["input_ids"]
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        items, kwargs = self.spec.row_adapter(columns, self.text_column)
        kwargs = {**kwargs, **self.processor_kwargs}
        return dict(self.processor(**{name: items, f"{name}_kwargs": kwargs})[name])


class EpochBatchSampler:
    """Per-process batches of row indices for one epoch of a map-style dataset.

    Epoch e shuffles all rows with a generator seeded `seed + e`, cuts the permutation into global batches
    of `batch_size * world_size` rows (dropping the incomplete tail) and yields this process's slice of
    each, starting at global batch `start`.
    """

    def __init__(
        self, num_rows: int, batch_size: int, rank: int, world_size: int, seed: int, epoch: int, start: int
    ):
        self.num_rows, self.batch_size, self.rank, self.world_size = num_rows, batch_size, rank, world_size
        self.seed, self.epoch, self.start = seed, epoch, start

    def __len__(self) -> int:
        return max(0, self.num_rows // (self.batch_size * self.world_size) - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.num_rows, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        global_batch = self.batch_size * self.world_size
        for index in range(self.start, self.num_rows // global_batch):
            begin = index * global_batch + self.rank * self.batch_size
            yield order[begin : begin + self.batch_size].tolist()


class IndexedRows(torch.utils.data.Dataset):
    """A map-style dataset whose rows also hold their index (`ROW_INDEX`), so the collator can name bad rows."""

    def __init__(self, rows: Dataset):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return {**self.rows[index], ROW_INDEX: index}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [{**row, ROW_INDEX: index} for index, row in zip(indices, self.rows.__getitems__(indices))]


class BatchStream:
    """Endless batches of one task's rows for this process, epoch after epoch, with a resumable position.

    `state_dict()` is `{"epoch", "position"}` (batches taken in the current epoch); `load_state_dict`
    makes the next batch the one an uninterrupted run would take next. With `replay` rows and a
    `replay_share`, that share of every batch comes from them (`mmfm.data.replay`), resumed exactly too. Bad rows of a streamed batch
    (`bad_rows` of the collator's dict) are named by their place in this process's stream.
    """

    def __init__(
        self,
        rows: Dataset | IterableDataset,
        collate: Callable,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        num_workers: int,
        shuffle_buffer: int,
        where: str,
        replay: Dataset | IterableDataset | None = None,
        replay_share: float = 0.0,
    ):
        self.collate, self.batch_size, self.rank, self.world_size = collate, batch_size, rank, world_size
        self.seed, self.num_workers, self.where = seed, num_workers, where
        self.streaming = isinstance(rows, IterableDataset)
        # Continued pretraining: `replay_share` of the rows from the original data (`mmfm.data.replay`).
        self.replay_share = replay_share if replay is not None else 0.0
        self.num_new = None if self.streaming else len(rows)
        if self.replay_share and self.streaming:
            rows = mix_streams(rows, replay, replay_share, seed, shuffle_buffer, f"{where}.replay")
        elif self.replay_share:
            self.num_replay = len(replay)
            rows = concatenate_replay(rows, replay, f"{where}.replay")
        if self.streaming:
            from datasets.distributed import split_dataset_by_node

            rows = split_dataset_by_node(rows, rank=rank, world_size=world_size)
            rows = rows.shuffle(seed=seed, buffer_size=shuffle_buffer)
        elif self.num_new < batch_size * world_size:
            raise ValueError(
                f"`{where}` has {self.num_new} rows, fewer than one global batch ({batch_size} per process x "
                f"{world_size} processes): lower `training.per_device_batch_size` or add data."
            )
        self.rows = rows
        self.epoch, self.position = 0, 0
        self._batches: Iterator | None = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._batches = None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> dict[str, Any]:
        for _ in range(2):
            if self._batches is None:
                self._batches = self._epoch_batches()
            batch = next(self._batches, None)
            if batch is not None:
                if self.streaming and isinstance(batch, dict) and batch.get("bad_rows"):
                    batch["bad_rows"] = [self._name(bad) for bad in batch["bad_rows"]]
                self.position += 1
                return batch
            if self.position == 0:
                break
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
        raise ValueError(f"`{self.where}` gives this process (rank {self.rank}) no complete batch.")

    def _name(self, bad: BadRow | str) -> BadRow | str:
        if not isinstance(bad, BadRow) or bad.row is not None:
            return bad
        row = self.position * self.batch_size + bad.batch_index
        return dataclasses.replace(bad, row=f"row {row} of this process's stream in epoch {self.epoch}")

    def _epoch_batches(self) -> Iterator[dict[str, Any]]:
        # The loader's own generator seeds its workers, so creating it never draws from the global torch
        # generator (which the model's masks use and checkpoints restore).
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        common = {"collate_fn": self.collate, "num_workers": self.num_workers, "generator": generator}
        if self.streaming:
            self.rows.set_epoch(self.epoch)
            loader = DataLoader(self.rows, batch_size=self.batch_size, drop_last=True, **common)
            return itertools.islice(iter(loader), self.position, None)  # replays the stream to the position
        if self.replay_share:
            sampler = ReplayBatchSampler(
                self.num_new, self.num_replay, self.batch_size, self.rank, self.world_size, self.seed, self.epoch,
                self.position, self.replay_share,
            )  # fmt: skip
        else:
            sampler = EpochBatchSampler(
                len(self.rows), self.batch_size, self.rank, self.world_size, self.seed, self.epoch, self.position
            )
        return iter(DataLoader(IndexedRows(self.rows), batch_sampler=sampler, **common))


__all__ = [
    "PROCESSING_ERRORS",
    "BatchStream",
    "EpochBatchSampler",
    "IndexedRows",
    "RowCollator",
    "SkippingCollator",
]
