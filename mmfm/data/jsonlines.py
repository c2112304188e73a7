"""Local JSON-lines files read so that one bad line is one skipped row, not a failed run.

A bad line is invalid JSON, bytes that are not UTF-8, or JSON that is not an object (a `.json` file holding one
list of objects or of strings, or one object, is read whole, as `datasets`' `json` builder reads it). Bad lines
are counted with the task's caps (`BadRowLimits`): past one, or at the first with `on_bad_sample=raise`, a
`TooManyBadRows` names the file and line. The count of the others rides on a good row next to them
(`CARRIER_COLUMNS`), so the training loop adds them to `skipped_samples` when it draws that row.

Map-style data keeps `datasets.load_dataset("json")` as the engine: clean files load exactly as before; when
loading fails, files with bad lines are replaced by cleaned copies (in the `datasets` cache) holding their good
lines, and one warning says how many lines were skipped. Streams are read line by line in a
`IterableDataset.from_generator` (one shard per file, as the `json` builder shards them); every row has the
columns of the first lines (missing values None, as the `json` builder fills them) and keeps its values as
parsed, so a value of an unexpected type reaches the row adapter, which refuses it as a bad row, instead of
being cast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import datasets
from datasets import Dataset, IterableDataset

from .bad_rows import (
    BadRow,
    BadRowCounter,
    BadRowLimits,
    error_text,
    short_repr,
)

logger = logging.getLogger(__name__)

# Good lines read to find a stream's columns (the `json` builder infers them from its first chunk).
INFER_FROM_LINES = 1000


class UnreadableJsonFile(ValueError):
    """A file with no good line at all: not JSON lines (wrong format), rather than a few bad rows."""


# ---------------------------------------------------------------------------------------------- parsing


def _parse(line: bytes) -> dict:
    try:
        value = json.loads(line)
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text ({err})") from err
    except ValueError as err:
        raise ValueError(f"invalid JSON ({err})") from err
    if not isinstance(value, dict):
        raise TypeError(f"a JSON {type(value).__name__}, not an object")
    return value


def read_objects(path: str | Path) -> Iterator[dict | BadRow]:
    """The rows of one JSON-lines (or `.json`) file in order: a dict per good line, a `BadRow` per bad one.
    Blank lines are skipped."""
    path = str(path)
    with open(path, "rb") as f:
        head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        f.seek(0)
        if head.startswith(b"["):
            yield from _document_rows(path, _document(path, f.read(), strict=True))
            return
        for number, line in enumerate(f, 1):
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line.strip():
                continue
            try:
                row = _parse(line)
            except (ValueError, TypeError) as err:
                if number == 1 and path.lower().endswith(".json") and head.startswith(b"{"):
                    f.seek(0)  # perhaps a `.json` file holding one object written over several lines
                    document = _document(path, f.read(), strict=False)
                    if document is not None:
                        yield from _document_rows(path, document)
                        return
                    f.seek(0)
                    next(f)
                yield BadRow(
                    f"{path}:{number}",
                    error_text(err),
                    value=short_repr(line.decode("utf-8", "backslashreplace")),
                )
                continue
            yield row


def _document(path: str, data: bytes, strict: bool):
    try:
        return json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except ValueError as err:
        if strict:
            raise UnreadableJsonFile(f"{path} is neither JSON lines nor one JSON document ({err})") from err
        return None


def _document_rows(path: str, document: object) -> Iterator[dict | BadRow]:
    for number, item in enumerate(document if isinstance(document, list) else [document]):
        row = {"text": item} if isinstance(item, str) else item  # a list of strings is a text column
        if not isinstance(row, dict):
            yield BadRow(
                f"{path}: item {number}", f"a JSON {type(row).__name__}, not an object", value=short_repr(row)
            )
            continue
        yield row


def _carried(row: dict, count: int, first: BadRow | None, columns: list[str] | None) -> dict:
    if columns is not None:
        row = {c: row.get(c) for c in columns}
    return {**row, "num_skipped": count, "skipped_rows": "" if first is None else str(first)}


def _unreadable(path: str, first_bad: BadRow, limits: BadRowLimits) -> UnreadableJsonFile:
    return UnreadableJsonFile(
        f"`{limits.where}.source`: no line of {path} is a JSON object (the first: {first_bad}). Check the file, or "
        f"set `{limits.where}.format`."
    )


def read_rows(
    files: list[str],
    limits: BadRowLimits,
    columns: list[str] | None = None,
    counter: BadRowCounter | None = None,
) -> Iterator[dict]:
    """Good rows of `files` in order (with just `columns` when given, missing ones None), each with the
    carrier columns: the bad lines after it (and, on the first row, those before it) travel on it. Counts
    bad lines with `limits`' caps (on `counter` when given).

    Raises:
        TooManyBadRows: past a cap (or at the first bad line with `on_bad_sample=raise`).
        UnreadableJsonFile: a file with bad lines and no good one.
    """
    counter = counter or BadRowCounter(limits, unit="lines")
    held, bad, count = None, None, 0  # the row held back, the first bad line since and how many
    for path in files:
        good = first_bad = None
        for item in read_objects(path):
            if isinstance(item, BadRow):
                counter.bad([item])
                bad, count = bad or item, count + 1
                first_bad = first_bad or item
                continue
            counter.good()
            good = True
            if held is not None:
                yield _carried(held, count, bad, columns)
                bad, count = None, 0
            held = item
        if first_bad is not None and not good:
            raise _unreadable(path, first_bad, limits)
    if held is not None:
        yield _carried(held, count, bad, columns)


# ---------------------------------------------------------------------------------------------- map-style


def load_json(files: list[Path], limits: BadRowLimits, streaming: bool) -> Dataset | IterableDataset:
    """Local JSON-lines / JSON `files` as one dataset (see the module docstring)."""
    names = [str(f) for f in files]
    if streaming:
        columns = _first_columns(names, limits)  # a tuple: `from_generator` shards the lists (the files)
        return IterableDataset.from_generator(
            _stream_rows, gen_kwargs={"files": names, "limits": limits, "columns": columns}
        )
    try:
        rows = datasets.load_dataset("json", data_files=names, split="train")
        rows.data.table.validate(full=True)  # pyarrow reads bytes that are not UTF-8 into strings unchecked
        return rows
    except Exception as err:  # datasets raises many types; bad lines are looked for below
        cleaned = _cleaned(names, limits)
        if cleaned is None:
            raise  # no bad line: the files are unreadable for another reason, which the caller reports
        logger.debug("Loading the cleaned copies of %s after: %s", limits.where, err)
    return datasets.load_dataset("json", data_files=cleaned, split="train")


def _cleaned(files: list[str], limits: BadRowLimits) -> list[str] | None:
    """None when no file has a bad line; otherwise one JSON-lines file in the `datasets` cache with the good rows
    of all `files` in order, each with the carrier columns. Named by the files' paths, sizes and times, so an
    edited file is cleaned again. Logs one warning with the count and the first and last bad lines."""
    if not any(isinstance(item, BadRow) for path in files for item in read_objects(path)):
        return None
    stamps = "|".join(f"{os.path.abspath(p)}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}" for p in files)
    key = hashlib.sha256(stamps.encode()).hexdigest()[:16]
    target = Path(datasets.config.HF_DATASETS_CACHE) / "mmfm_cleaned_json" / key / "rows.jsonl"
    counter = BadRowCounter(limits, unit="lines")
    rows = read_rows(files, limits, counter=counter)  # counted (and capped) even when the copy exists
    if target.is_file():
        for _ in rows:
            pass
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"rows.{os.getpid()}.partial")
        with open(partial, "w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.replace(partial, target)  # atomic: another process reading the cache never sees half a file
    examples = str(counter.first) + (
        f"; the last: {counter.last}" if counter.last is not counter.first else ""
    )
    logger.warning(
        "%s: skipped %d bad line(s) of the JSON-lines data (they count in skipped_samples when the row next to "
        "them is drawn). The first: %s", limits.where, counter.total, examples,
    )  # fmt: skip
    return [str(target)]


# ---------------------------------------------------------------------------------------------- streams


def _stream_rows(files: list[str], limits: BadRowLimits, columns: tuple[str, ...] | None) -> Iterator[dict]:
    yield from read_rows(files, limits, list(columns) if columns else None)


def _first_columns(files: list[str], limits: BadRowLimits) -> tuple[str, ...] | None:
    """The columns of the first `INFER_FROM_LINES` good rows, in the order met; None without rows.

    Raises:
        UnreadableJsonFile: a file read on the way holds bad lines and no good one.
    """
    columns: dict[str, None] = {}
    rows = 0
    for path in files:
        good, first_bad = 0, None
        for item in read_objects(path):
            if isinstance(item, BadRow):
                first_bad = first_bad or item
                continue
            columns.update(dict.fromkeys(item))
            good, rows = good + 1, rows + 1
            if rows >= INFER_FROM_LINES:
                return tuple(columns)
        if first_bad is not None and not good:
            raise _unreadable(path, first_bad, limits)
    return tuple(columns) if rows else None


__all__ = ["UnreadableJsonFile", "load_json", "read_objects", "read_rows"]
