"""Where rows come from: the demo corpus or local data as users store it, for pretraining, evaluation and
every later recipe.

Local data is a file, a glob, a folder of JSON lines / Parquet / Arrow / CSV files, a folder written by
`Dataset.save_to_disk`, or a folder of raw files of the modality (images, read by `datasets`' `imagefolder`
builder: class subfolders become the `label` column, `train`/`test` folders the splits). Columns that
hold file paths (a JSON lines `image` column of `photos/cat.png`) keep them as paths, made absolute
against the data file's folder; the modality's row adapter opens them, so an unreadable file is one bad
row (skipped and counted, or an error naming it) rather than a crash inside the loader.

Every function takes the modality's spec (`mmfm.modalities`), so nothing here names a modality.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict, IterableDataset, concatenate_datasets

from ..modalities import ModalitySpec
from .bad_rows import CARRIER_COLUMNS, BadRowLimits, TooManyBadRows
from .demo import load_demo_dataset
from .jsonlines import load_json

logger = logging.getLogger(__name__)

FILE_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
SPLIT_OF_EVALUATION = ("train", "test")


# ---------------------------------------------------------------------------------------------- rows


def first_row(rows: Dataset | IterableDataset) -> dict | None:
    """The first row's data (None when there is none), without reading a stream further than that; the
    counts of skipped rows some rows carry (`CARRIER_COLUMNS`) are left out."""
    first = _peek(rows)
    return None if first is None else {k: v for k, v in first.items() if k not in CARRIER_COLUMNS}


def _peek(rows: Dataset | IterableDataset) -> dict | None:
    if isinstance(rows, Dataset):
        return rows[0] if len(rows) else None
    return next(iter(rows.take(1)), None)


def column_names(rows: Dataset | IterableDataset) -> list[str]:
    """Every column, the carriers of skipped-row counts included."""
    if rows.column_names is not None:
        return list(rows.column_names)
    first = _peek(rows)  # a stream whose columns are unknown (after a `map`) knows them once read
    return list(first) if first is not None else []


def keep_values(rows, column: str, values: list, where: str):
    """The rows whose `column` holds one of `values` (`include` of data and evaluation sections)."""
    if column not in column_names(rows):
        raise ValueError(f"`{where}.include` names column {column!r}, which the data does not have.")
    wanted = set(values)
    return rows.filter(lambda value: value in wanted, input_columns=column)


def require_columns(
    rows, spec: ModalitySpec, text_column: str, source: str, where: str, first: dict | None
) -> list[str]:
    """The columns of `rows` the modality reads; `ValueError` naming the missing required ones."""
    required, optional = spec.columns(text_column)
    present = [c for c in (rows.column_names or first or {}) if c not in CARRIER_COLUMNS]
    missing = [c for c in required if c not in present]
    if missing:
        raise ValueError(
            f"`{where}.source` ({source}) has no column(s) {missing}, which the {spec.name} objective needs; its "
            f"columns are {present}."
            + (f" Set `{where}.text_column` to the text column." if spec.tokenized else "")
        )
    return [c for c in required + optional if c in present]


# ---------------------------------------------------------------------------------------------- training rows


def load_rows(
    source: str,
    spec: ModalitySpec,
    where: str,
    subsets: Sequence[str] = (),
    format: str | None = None,
    streaming: bool = False,
    include: dict[str, list] | None = None,
    text_column: str = "text",
    num_shards: int = 1,
    limits: BadRowLimits | None = None,
) -> Dataset | IterableDataset:
    """A task's training rows, reduced to the columns its modality reads (and the carriers of skipped-row
    counts, `CARRIER_COLUMNS`); checked for columns and emptiness. Image and audio columns stay undecoded
    (`{"bytes", "path"}`): the row adapter decodes them, so a corrupt file is one bad row.

    Args:
        source: `demo` (with `subsets`) or local data (see the module docstring).
        spec: the modality of the task.
        where: the config section, for messages (e.g. `tasks.mae.data`).
        format: `json`, `parquet`, `arrow` or `csv`; inferred from file names when None.
        streaming: read as a `datasets` stream.
        include: keep only rows whose column holds one of the listed values.
        num_shards: shards of a streamed demo subset (DataLoader workers).
        limits: what to do with bad lines of JSON-lines files (default: skip and count, the default caps).

    Raises:
        FileNotFoundError: a local `source` that does not exist or matches no file.
        ValueError: unreadable files, an unknown format, missing columns or no rows at all;
            `TooManyBadRows` for more bad JSON lines than `limits` allow.
    """
    if source == "demo":
        parts = [load_demo_dataset(spec.name, subset)["train"] for subset in subsets]
        if len(parts) > 1:  # subsets differ in their label columns: join only the input columns
            required, optional = spec.columns(text_column)
            wanted = [c for c in required + optional if all(c in p.column_names for p in parts)]
            parts = [p.select_columns(wanted + [c for c in include or {} if c not in wanted]) for p in parts]
        rows = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
        if streaming:
            rows = rows.to_iterable_dataset(num_shards=max(1, num_shards))
    else:
        rows = load_local(source, spec, where, format, streaming, limits)
        if isinstance(rows, DatasetDict):
            rows = _training_split(rows, source, where)
    rows = undecoded(rows)
    for column, values in (include or {}).items():
        rows = keep_values(rows, column, values, where)
    first = _peek(rows)  # read once: on a stream every look at a row opens the files again
    if first is None:
        raise ValueError(f"`{where}.source` ({source}) holds no rows: there is nothing to train on.")
    carriers = [c for c in CARRIER_COLUMNS if c in first]
    data = {k: v for k, v in first.items() if k not in CARRIER_COLUMNS}
    return rows.select_columns(require_columns(rows, spec, text_column, source, where, data) + carriers)


def undecoded(rows):
    """`rows` with every decoding `datasets.Image`/`Audio` column cast to `decode=False`: cells stay
    `{"bytes", "path"}` for the row adapter to decode (a corrupt file is then a bad row, not a crash of the
    DataLoader's fetcher)."""
    for column, feature in (rows.features or {}).items():
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            rows = rows.cast_column(column, dataclasses.replace(feature, decode=False))
    return rows


def _training_split(splits: DatasetDict | datasets.IterableDatasetDict, source: str, where: str):
    if "train" not in splits and len(splits) != 1:
        raise ValueError(
            f"`{where}.source` = {source!r} holds splits {sorted(splits)} but no `train` split; point `source` at "
            "the split folder to train on."
        )
    return splits["train"] if "train" in splits else next(iter(splits.values()))


# ---------------------------------------------------------------------------------------------- local data


def load_local(
    source: str,
    spec: ModalitySpec,
    where: str,
    format: str | None = None,
    streaming: bool = False,
    limits: BadRowLimits | None = None,
) -> Dataset | IterableDataset | DatasetDict:
    """Local data as a dataset, or a `DatasetDict` when the source has named splits (a `save_to_disk`
    folder of splits, an image folder with `train`/`test` subfolders, split-named files). Bad lines of JSON
    files are skipped and counted with `limits` (`mmfm.data.jsonlines`)."""
    path = Path(source).expanduser()
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        rows = datasets.load_from_disk(str(path))  # written by Dataset.save_to_disk
        if streaming:
            return (
                rows.to_iterable_dataset()
                if isinstance(rows, Dataset)
                else _training_split(rows, source, where).to_iterable_dataset()
            )
        return rows
    files = (
        sorted(p for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else sorted(Path(p) for p in _glob(str(path)))
    )
    tables = [f for f in files if f.suffix.lower() in FILE_FORMATS]
    if (
        path.is_dir()
        and not tables
        and spec.folder_builder
        and any(f.suffix.lower() in spec.folder_extensions for f in files)
    ):
        return _load_folder(path, spec, where, streaming)
    if not tables:
        kinds = sorted(set(FILE_FORMATS.values())) + (
            [f"a folder of {spec.folder_builder} files"] if spec.folder_builder else []
        )
        raise FileNotFoundError(
            f"`{where}.source` = {source!r} matches no data file ({kinds}); give a file, a glob, a folder of files"
            f"{' or of ' + '/'.join(spec.folder_extensions) + ' files' if spec.folder_extensions else ''}, or a "
            "folder written by `save_to_disk`."
        )
    fmt = format or _infer_format(tables, where)
    if all(f.stat().st_size == 0 for f in tables):
        raise ValueError(f"`{where}.source` = {source!r} holds no rows (its files are empty).")
    loaded = {}
    for split, split_files in _by_split(tables, path if path.is_dir() else None).items():
        # File paths in the rows are read relative to their data file: load each folder's files on their own.
        groups = _by_folder(split_files) if spec.file_columns else {None: split_files}
        parts = [
            _load_tables(group, fmt, source, where, streaming, folder, spec, limits or BadRowLimits(where))
            for folder, group in groups.items()
        ]
        loaded[split] = parts[0] if len(parts) == 1 else concatenate_datasets(_align_carriers(parts))
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    return (datasets.IterableDatasetDict if streaming else DatasetDict)(loaded)


def _load_tables(files: list[Path], fmt: str, source: str, where: str, streaming: bool, folder, spec, limits):
    try:
        if fmt == "json":
            rows = load_json(files, limits, streaming)
        else:
            rows = datasets.load_dataset(
                fmt, data_files=[str(f) for f in files], split="train", streaming=streaming
            )
    except TooManyBadRows:
        raise
    except Exception as err:  # datasets raises many types for unreadable files; say which field to fix
        raise ValueError(
            f"Could not read `{where}.source` = {source!r} as {fmt} ({type(err).__name__}: {err}). Check the "
            f"files, or set `{where}.format`."
        ) from err
    rows = undecoded(rows)
    return resolve_file_columns(rows, spec, folder) if folder is not None else rows


def _align_carriers(parts: list) -> list:
    """Map-style parts to concatenate, each with the carrier columns when one has them (cleaned JSON lines)."""
    if not any(isinstance(p, Dataset) and CARRIER_COLUMNS[0] in p.column_names for p in parts):
        return parts
    return [
        p
        if CARRIER_COLUMNS[0] in p.column_names
        else p.add_column("num_skipped", [0] * len(p)).add_column("skipped_rows", [""] * len(p))
        for p in parts
    ]


def _by_split(files: list[Path], root: Path | None) -> dict[str, list[Path]]:
    """Files by the split their name or folder names say (`train`, `test`, `validation`, as `datasets` infers
    splits); files that name none belong to `train`."""
    splits: dict[str, list[Path]] = {}
    for f in files:
        parts = f.relative_to(root).parts if root is not None else (f.name,)
        words = {
            w
            for part in parts
            for w in re.split(r"[^a-z]+", Path(part).stem.lower() if part == parts[-1] else part.lower())
        }
        split = next((s for s in ("test", "validation", "train") if s in words), "train")
        splits.setdefault(split, []).append(f)
    return splits


def _by_folder(files: list[Path]) -> dict[Path, list[Path]]:
    groups: dict[Path, list[Path]] = {}
    for f in files:
        groups.setdefault(f.parent, []).append(f)
    return groups


def resolve_file_columns(rows, spec: ModalitySpec, folder: Path):
    """Make the relative paths in the modality's file columns absolute against `folder` (the data file's)."""
    decoders = (datasets.Image, datasets.Audio)  # cells of these features hold bytes or paths of their own
    present = [
        c
        for c in spec.file_columns
        if c in column_names(rows) and not isinstance((rows.features or {}).get(c), decoders)
    ]
    if not present:
        return rows

    def absolute(batch: dict[str, list]) -> dict[str, list]:
        return {c: [_absolute(value, folder) for value in batch[c]] for c in present}

    return rows.map(absolute, batched=True, input_columns=None)


def _absolute(value: Any, folder: Path) -> Any:
    if isinstance(value, str) and value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else folder / path)
    return value


def _load_folder(path: Path, spec: ModalitySpec, where: str, streaming: bool):
    """A folder of raw files through `datasets`' folder builder (e.g. `imagefolder`): one row per file, class
    subfolders as `label`, `train`/`test` subfolders as splits. Files stay undecoded (paths), so the row
    adapter opens them and an unreadable one is a bad row, not a crash."""
    try:
        splits = datasets.load_dataset(spec.folder_builder, data_dir=str(path), streaming=streaming)
    except Exception as err:
        raise ValueError(
            f"Could not read `{where}.source` = {str(path)!r} as a {spec.folder_builder} ({type(err).__name__}: "
            f"{err})."
        ) from err
    for column, feature in spec.file_columns.items():
        splits = splits.cast_column(column, feature(decode=False))
    return splits if len(splits) > 1 else next(iter(splits.values()))


def _glob(pattern: str) -> list[str]:
    return [p for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]


def _infer_format(files: list[Path], where: str) -> str:
    formats = {FILE_FORMATS.get(f.suffix.lower()) for f in files}
    if None in formats or len(formats) != 1:
        raise ValueError(
            f"Cannot infer the format of `{where}.source` from its files' extensions "
            f"{sorted({f.suffix for f in files})}; set `{where}.format` to one of {sorted(set(FILE_FORMATS.values()))}."
        )
    return formats.pop()


# ---------------------------------------------------------------------------------------------- evaluation splits


def load_labelled_splits(
    source: str,
    spec: ModalitySpec,
    where: str,
    label_column: str,
    subset: str = "",
    seed: int = 0,
) -> tuple[Dataset, Dataset]:
    """(train, test) of labelled data: a demo subset, or local data with `train` and `test` splits. Local data
    with a single split is divided 80/20, seeded and stratified by `label_column` when it is a class label.

    Raises:
        ValueError: no label column, or splits other than train/test that cannot be told apart.
    """
    if source == "demo":
        data = load_demo_dataset(spec.name, subset)
        return data["train"], data["test"]
    data = load_local(source, spec, where)
    if isinstance(data, (DatasetDict, dict)):
        missing = [s for s in SPLIT_OF_EVALUATION if s not in data]
        if missing and len(data) > 1:
            raise ValueError(
                f"`{where}.source` = {source!r} has splits {sorted(data)}, not train and test; name the folders or "
                "files train/test, or give one split to be divided 80/20."
            )
        if not missing:
            train, test = data["train"], data["test"]
            _require_label(train, label_column, source, where)
            return train, test
        data = next(iter(data.values()))
    _require_label(data, label_column, source, where)
    stratify = label_column if isinstance(data.features[label_column], datasets.ClassLabel) else None
    logger.info(
        "%s = %s has one split: dividing it 80/20 (seed %d) into train and test.", where, source, seed
    )
    halves = data.train_test_split(test_size=0.2, seed=seed, stratify_by_column=stratify)
    return halves["train"], halves["test"]


def _require_label(rows: Dataset, label_column: str, source: str, where: str) -> None:
    if label_column not in rows.column_names:
        raise ValueError(
            f"`{where}.source` = {source!r} has no label column {label_column!r}; its columns are "
            f"{rows.column_names}. Set `{where}.label_column`."
        )


__all__ = [
    "FILE_FORMATS",
    "column_names",
    "first_row",
    "keep_values",
    "load_labelled_splits",
    "load_local",
    "load_rows",
    "require_columns",
    "resolve_file_columns",
    "undecoded",
]
