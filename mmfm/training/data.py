"""Training data: rows from the demo corpus or local files, checked, packed (text), sharded over processes
and batched, with a position that checkpoints save and resume restores.

Map-style datasets (the demo corpus, files that fit in memory) are shuffled per epoch by a seeded
permutation and cut into global batches of `per_device_batch_size x processes` rows; process r takes the
r-th slice of each, so no row is seen twice in an epoch and one process with batch 2b sees exactly the
rows two processes with batch b see together. The last incomplete global batch of an epoch is dropped.
Streaming datasets (`data.streaming: true`) are split with `datasets.distributed.split_dataset_by_node`
and shuffled through a buffer, reseeded per epoch with `set_epoch`.
"""

from __future__ import annotations

import glob
import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets import Dataset, IterableDataset, concatenate_datasets
from torch.utils.data import DataLoader

from ..data.demo import load_demo_dataset
from ..evaluation.features import _OPTIONAL_COLUMNS, _REQUIRED_COLUMNS, _ROW_ADAPTERS
from .config import DataSection

logger = logging.getLogger(__name__)

FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}


# ---------------------------------------------------------------------------------------------- loading


def input_columns(modality: str, data: DataSection) -> tuple[list[str], list[str]]:
    """(required, optional) columns a task of `modality` reads."""
    if modality == "text":
        return [data.text_column], []
    return list(_REQUIRED_COLUMNS[modality]), list(_OPTIONAL_COLUMNS.get(modality, ()))


def load_rows(data: DataSection, modality: str, where: str) -> Dataset | IterableDataset:
    """The task's rows, reduced to the columns it reads; checked for columns and emptiness.

    Raises:
        FileNotFoundError: a local `source` that does not exist or matches no file.
        ValueError: unreadable files, an unknown format, missing columns or no rows at all.
    """
    if data.source == "demo":
        parts = [load_demo_dataset(modality, subset)["train"] for subset in data.subsets]
        if len(parts) > 1:  # subsets differ in their label columns: join only the input columns
            required, optional = input_columns(modality, data)
            wanted = [c for c in required + optional if all(c in p.column_names for p in parts)]
            parts = [p.select_columns(wanted + [c for c in data.include if c not in wanted]) for p in parts]
        rows = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
        if data.streaming:
            rows = rows.to_iterable_dataset(num_shards=max(1, data.num_workers))
    else:
        rows = _load_local(data, where)
    for column, values in data.include.items():
        rows = keep_values(rows, column, values, where)
    first = first_row(rows)  # read once: on a stream every look at a row opens the files again
    if first is None:
        raise ValueError(f"`{where}.source` ({data.source}) holds no rows: there is nothing to train on.")
    required, optional = input_columns(modality, data)
    present = list(rows.column_names) if rows.column_names is not None else list(first)
    missing = [c for c in required if c not in present]
    if missing:
        raise ValueError(
            f"`{where}.source` ({data.source}) has no column(s) {missing}, which the {modality} objective "
            f"needs; its columns are {present}."
            + (" Set `" + where + ".text_column` to the text column." if modality == "text" else "")
        )
    return rows.select_columns([c for c in required + optional if c in present])


def _load_local(data: DataSection, where: str) -> Dataset | IterableDataset:
    path = Path(data.source).expanduser()
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        rows = datasets.load_from_disk(str(path))  # written by Dataset.save_to_disk
        if isinstance(rows, datasets.DatasetDict):
            if "train" not in rows and len(rows) != 1:
                raise ValueError(
                    f"`{where}.source` = {data.source!r} holds splits {sorted(rows)} but no `train` split; "
                    "point `source` at the split folder to train on."
                )
            rows = rows["train"] if "train" in rows else next(iter(rows.values()))
        return rows.to_iterable_dataset() if data.streaming else rows
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in FILE_FORMATS)
    else:
        files = sorted(Path(p) for p in _glob(str(path)))
    if not files:
        raise FileNotFoundError(
            f"`{where}.source` = {data.source!r} matches no data file ({sorted(set(FILE_FORMATS.values()))}); "
            "give a file, a glob, a folder of files or a folder written by `save_to_disk`."
        )
    fmt = data.format or _infer_format(files, where)
    if all(f.stat().st_size == 0 for f in files):
        raise ValueError(f"`{where}.source` = {data.source!r} holds no rows (its files are empty).")
    try:
        return datasets.load_dataset(
            fmt, data_files=[str(f) for f in files], split="train", streaming=data.streaming
        )
    except Exception as err:  # datasets raises many types for unreadable files; say which field to fix
        raise ValueError(
            f"Could not read `{where}.source` = {data.source!r} as {fmt} ({type(err).__name__}: {err}). Check "
            f"the files, or set `{where}.format`."
        ) from err


def _glob(pattern: str) -> list[str]:
    return [p for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]


def _infer_format(files: list[Path], where: str) -> str:
    formats = {FILE_FORMATS.get(f.suffix) for f in files}
    if None in formats or len(formats) != 1:
        raise ValueError(
            f"Cannot infer the format of `{where}.source` from its files' extensions "
            f"{sorted({f.suffix for f in files})}; set `{where}.format` to one of {sorted(set(FILE_FORMATS.values()))}."
        )
    return formats.pop()


def first_row(rows: Dataset | IterableDataset) -> dict | None:
    """The first row (None when there is none), without reading a stream further than that."""
    if isinstance(rows, Dataset):
        return rows[0] if len(rows) else None
    return next(iter(rows.take(1)), None)


def _column_names(rows: Dataset | IterableDataset) -> list[str]:
    if rows.column_names is not None:
        return list(rows.column_names)
    first = first_row(rows)  # a stream of JSON lines knows its columns once read
    return list(first) if first is not None else []


def keep_values(rows, column: str, values: list, where: str):
    """The rows whose `column` holds one of `values` (`include` of data and evaluation sections)."""
    if column not in _column_names(rows):
        raise ValueError(f"`{where}.include` names column {column!r}, which the data does not have.")
    wanted = set(values)
    return rows.filter(lambda value: value in wanted, input_columns=column)


# ---------------------------------------------------------------------------------------------- text packing


def pack_texts(rows, tokenizer, data: DataSection, where: str):
    """Tokenize every text and cut the concatenation into blocks of exactly `data.max_length` tokens.

    Texts keep their special tokens ([CLS] ... [SEP]) so block boundaries inside a block stay visible,
    as in transformers' `run_mlm.py` `group_texts`. The tail shorter than one block is dropped (per
    1,000-text chunk). Empty or non-string texts are bad samples (counted in `num_skipped`, or an error).
    """
    column, block = data.text_column, data.max_length

    def group(batch: dict[str, list]) -> dict[str, list]:
        texts = [t for t in batch[column] if isinstance(t, str) and t.strip()]
        skipped = len(batch[column]) - len(texts)
        if skipped and data.on_bad_sample == "raise":
            raise ValueError(
                f"{skipped} empty or non-text value(s) in column {column!r} of `{where}.source`."
            )
        ids = (
            list(itertools.chain.from_iterable(tokenizer(texts, verbose=False)["input_ids"])) if texts else []
        )
        blocks = [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]
        if skipped and not blocks:
            blocks = [[]]  # an empty row carries the count; the collator drops it
        counts = [skipped] + [0] * (len(blocks) - 1) if blocks else []
        return {"input_ids": blocks, "num_skipped": counts}

    kwargs = {"batched": True, "batch_size": 1000, "remove_columns": _column_names(rows)}
    if isinstance(rows, Dataset):
        kwargs["desc"] = f"packing {where} into {block}-token blocks"
    return rows.map(group, **kwargs)


# ---------------------------------------------------------------------------------------------- batching


class RowCollator:
    """DataLoader `collate_fn`: a list of rows -> the batch one task's model needs (before text masking).

    Returns a dict with `inputs` (processor outputs; for text a list of token-id lists, masked later in
    the training process with a generator the checkpoint can reproduce), `num_rows` and `num_skipped`
    (rows dropped as bad samples). A row the processor refuses is a bad sample: with `on_bad_sample:
    skip` the batch is retried row by row and only the bad rows are dropped; `raise` stops with the error.
    """

    def __init__(self, modality: str, processor: Any, data: DataSection, processor_kwargs: dict, where: str):
        self.modality, self.processor, self.data = modality, processor, data
        self.processor_kwargs, self.where = processor_kwargs, where

    def __call__(self, rows: list[dict]) -> dict[str, Any]:
        skipped = sum(int(row.pop("num_skipped", 0) or 0) for row in rows)
        rows = [
            row for row in rows if "input_ids" not in row or len(row["input_ids"])
        ]  # packing's count carriers
        if not rows:
            return {"inputs": None, "num_rows": 0, "num_skipped": skipped}
        try:
            return {"inputs": self._process(rows), "num_rows": len(rows), "num_skipped": skipped}
        except (ValueError, TypeError, OSError, KeyError, IndexError) as err:
            if self.data.on_bad_sample == "raise":
                raise ValueError(
                    f"A batch of `{self.where}` could not be processed ({err}). Set "
                    f"`{self.where}.data.on_bad_sample=skip` to drop and count bad rows instead."
                ) from err
            good = [row for row in rows if self._processes(row)]
            if len(good) == len(rows):
                raise  # every row is fine alone: the batch itself is the problem, not a sample
            logger.warning("Skipped %d bad row(s) of %s: %s", len(rows) - len(good), self.where, err)
            inputs = self._process(good) if good else None
            return {"inputs": inputs, "num_rows": len(good), "num_skipped": skipped + len(rows) - len(good)}

    def _processes(self, row: dict) -> bool:
        try:
            self._process([dict(row)])
            return True
        except (ValueError, TypeError, OSError, KeyError, IndexError):
            return False

    def _process(self, rows: list[dict]) -> Any:
        if self.modality == "text":
            if "input_ids" in rows[0]:  # packed blocks
                return [list(row["input_ids"]) for row in rows]
            column = self.data.text_column
            texts = [row[column] for row in rows]
            if any(not isinstance(t, str) or not t.strip() for t in texts):
                raise ValueError(f"empty or non-text value in column {column!r}")
            kwargs = {"truncation": True, "max_length": self.data.max_length, "verbose": False}
            return self.processor["text"](texts, **kwargs)["input_ids"]
        columns = {key: [row[key] for row in rows] for key in rows[0]}
        items, kwargs = _ROW_ADAPTERS[self.modality](columns, self.data.text_column)
        kwargs = {**kwargs, **self.processor_kwargs}
        return dict(
            self.processor(**{self.modality: items, f"{self.modality}_kwargs": kwargs})[self.modality]
        )


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


class BatchStream:
    """Endless batches of one task's rows for this process, epoch after epoch, with a resumable position.

    `state_dict()` is `{"epoch", "position"}` (batches taken in the current epoch); `load_state_dict`
    makes the next batch the one an uninterrupted run would take next.
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
    ):
        self.collate, self.batch_size, self.rank, self.world_size = collate, batch_size, rank, world_size
        self.seed, self.num_workers, self.where = seed, num_workers, where
        self.streaming = isinstance(rows, IterableDataset)
        if self.streaming:
            from datasets.distributed import split_dataset_by_node

            rows = split_dataset_by_node(rows, rank=rank, world_size=world_size)
            rows = rows.shuffle(seed=seed, buffer_size=shuffle_buffer)
        elif len(rows) < batch_size * world_size:
            raise ValueError(
                f"`{where}` has {len(rows)} rows, fewer than one global batch ({batch_size} per process x "
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
                self.position += 1
                return batch
            if self.position == 0:
                break
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
        raise ValueError(f"`{self.where}` gives this process (rank {self.rank}) no complete batch.")

    def _epoch_batches(self) -> Iterator[dict[str, Any]]:
        # The loader's own generator seeds its workers, so creating it never draws from the global torch
        # generator (which the model's masks use and checkpoints restore).
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        common = {"collate_fn": self.collate, "num_workers": self.num_workers, "generator": generator}
        if self.streaming:
            self.rows.set_epoch(self.epoch)
            loader = DataLoader(self.rows, batch_size=self.batch_size, drop_last=True, **common)
            return itertools.islice(iter(loader), self.position, None)  # replays the stream to the position
        sampler = EpochBatchSampler(
            len(self.rows), self.batch_size, self.rank, self.world_size, self.seed, self.epoch, self.position
        )
        return iter(DataLoader(self.rows, batch_sampler=sampler, **common))


__all__ = [
    "BatchStream", "EpochBatchSampler", "RowCollator", "first_row", "input_columns", "keep_values", "load_rows", "pack_texts",
]  # fmt: skip
