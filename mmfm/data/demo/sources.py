"""Shared helpers for the demo-corpus builders: optional-source checks, splits, caps, Arrow columns.

Every source of the demo corpus is optional. A builder calls `require_module`, `require_program` or
`require_file` before touching a source; when it is missing they raise `SourceUnavailable`, whose
message says what is missing and how to install it. The orchestrator (`corpus.py`) catches it, logs a
warning, records the reason in the manifest under `skipped` and moves on to the next subset.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, DatasetDict, Features

DEMO_INSTALL_HINT = "pip install 'mmfm[demo]'"
TEST_FRACTION = 0.2


class SourceUnavailable(RuntimeError):
    """A package, program or file that a demo subset is built from is not installed."""


@dataclass
class BuildResult:
    """What a subset builder returns.

    Attributes:
        dataset: the splits, `"train"` and, for labelled subsets, `"test"`.
        source: one line saying where the rows come from.
        license: the licence note for the data, as the project's data notes state it.
        notes: anything the build left out or assumed (a missing optional part, rows that failed to parse).
    """

    dataset: DatasetDict
    source: str
    license: str
    notes: list[str] = field(default_factory=list)


def require_module(name: str, install: str | None = None) -> ModuleType:
    """Import `name` or raise `SourceUnavailable` saying how to install it."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        hint = install or f"pip install {name.split('.')[0]}"
        raise SourceUnavailable(f"Python package `{name}` not found: `{hint}` (or `{DEMO_INSTALL_HINT}`).")
    return importlib.import_module(name)


def require_program(name: str, install: str) -> str:
    """Return the path of the executable `name` or raise `SourceUnavailable`.

    `shutil.which` is looked up at call time (not imported by name) so tests can monkeypatch it.
    """
    path = shutil.which(name)
    if path is None:
        raise SourceUnavailable(f"{name} not found: `{install}` (or `make setup`).")
    return path


def require_file(path: str | Path, install: str) -> Path:
    """Return `path` if it exists, else raise `SourceUnavailable` naming it and the install command."""
    path = Path(path)
    if not path.exists():
        raise SourceUnavailable(f"{path} not found: `{install}` (or `make setup`).")
    return path


def subset_rng(seed: int, name: str) -> np.random.Generator:
    """A generator seeded by the corpus seed and the subset name, so subsets draw independent streams."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def cap_indices(labels: Sequence[Any], max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most `max_samples` rows, taken round-robin over the label groups.

    Round-robin keeps every class (or every source dataset) present in a tiny capped build, which a
    plain prefix would not. Returns all indices, in order, when `max_samples` is None or not binding.
    """
    n = len(labels)
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    groups: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    queues = [list(rng.permutation(idx)) for _, idx in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    picked: list[int] = []
    while len(picked) < max_samples:
        for queue in queues:
            if queue and len(picked) < max_samples:
                picked.append(int(queue.pop()))
    return np.sort(np.asarray(picked, dtype=np.int64))


def stratified_split(labels: Sequence[Any], rng: np.random.Generator, test_fraction: float = TEST_FRACTION):
    """Seeded stratified train/test split of row indices.

    Each class with at least two rows puts `round(n * test_fraction)` rows (at least one) in the test set.

    Returns:
        `(train_idx, test_idx)`, both sorted int64 arrays.
    """
    labels = np.asarray(labels)
    test: list[int] = []
    for value in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == value))
        n_test = max(1, round(len(idx) * test_fraction)) if len(idx) >= 2 else 0
        test.extend(idx[:n_test].tolist())
    test_idx = np.sort(np.asarray(test, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def list_array(arrays: Sequence[np.ndarray], dtype: str) -> pa.Array:
    """Nested Arrow list array from 1-D or 2-D numpy arrays (one per row).

    `Dataset.from_dict` converts Python lists element by element (~2 s per 10 M floats); handing it a
    ready Arrow array is ~20x faster, which keeps the audio build within seconds.

    Args:
        arrays: per row, shape `(L,)` (gives `List(dtype)`) or `(A, B)` (gives `List(List(dtype))`,
            outer length A). All rows must have the same number of dimensions.
        dtype: numpy dtype of the leaf values, e.g. `"float32"`, `"int64"`.
    """
    if not arrays:
        raise ValueError("`arrays` is empty.")
    ndim = np.asarray(arrays[0]).ndim
    rows = [np.asarray(a, dtype=dtype) for a in arrays]
    if any(r.ndim != ndim for r in rows) or ndim not in (1, 2):
        raise ValueError(f"All rows must be 1-D or all 2-D, got ndims {sorted({r.ndim for r in rows})}.")
    if ndim == 2:
        inner_offsets = np.concatenate(
            [[0], np.cumsum([r.shape[1] for r in rows for _ in range(r.shape[0])])]
        )
        outer_offsets = np.concatenate([[0], np.cumsum([r.shape[0] for r in rows])])
        flat = np.concatenate([r.reshape(-1) for r in rows]) if rows else np.zeros(0, dtype)
        inner = pa.ListArray.from_arrays(pa.array(inner_offsets.astype(np.int32)), pa.array(flat))
        return pa.ListArray.from_arrays(pa.array(outer_offsets.astype(np.int32)), inner)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(np.concatenate(rows)))


def make_splits(
    columns: dict[str, Any],
    features: Features,
    split: dict[str, np.ndarray] | None = None,
) -> DatasetDict:
    """Build a `DatasetDict` from whole-subset columns and per-split row indices.

    Args:
        columns: column name -> list (or Arrow array) with one entry per row.
        features: the schema; every column must be named in it.
        split: split name -> row indices; `None` means a single `"train"` split with every row.
    """
    dataset = Dataset.from_dict(columns, features=features)
    if split is None:
        return DatasetDict({"train": dataset})
    return DatasetDict({name: dataset.select(np.asarray(idx)) for name, idx in split.items()})


def labelled_splits(
    columns: dict[str, Any],
    features: Features,
    label_column: str,
    rng: np.random.Generator,
) -> DatasetDict:
    """`make_splits` with a seeded stratified 80/20 split on `label_column` (a `ClassLabel`)."""
    if not isinstance(features[label_column], ClassLabel):
        raise TypeError(f"`{label_column}` must be a ClassLabel feature, got {features[label_column]}.")
    train_idx, test_idx = stratified_split(columns[label_column], rng)
    return make_splits(columns, features, {"train": train_idx, "test": test_idx})


Builder = Callable[[int | None, int], BuildResult]
