"""Bad rows: how a skipped row is described, how its count travels to the training loop, and the caps that
stop a run that would otherwise skip most of its data.

A bad row is a row the modality's processor refuses (a corrupt image, a clip at the wrong rate, an empty text)
or a line of a JSON-lines file that is no JSON object (invalid JSON, bytes that are not UTF-8). Each one is
skipped and counted (`data.on_bad_sample=skip`); `BadRowCounter` stops with a `ValueError` naming the rows,
columns, values and errors once more than `max_bad_rows_in_a_row` were skipped in a row or more than
`max_bad_rows` in one pass over the data.

Counts reach the training loop inside the batches (so DataLoader workers need no side channel): the collator's
`num_skipped` and `bad_rows`, fed by rows of the data that carry the count of skipped rows before them
(`CARRIER_COLUMNS`: text packing, the JSON-lines reader).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Columns a good row may carry: how many bad rows were skipped next to it (int), and the first one's
# description (str, "" when none).
CARRIER_COLUMNS = ("num_skipped", "skipped_rows")
# The key `BatchStream` adds to each row of map-style data: its index in the dataset, to name bad rows.
ROW_INDEX = "__mmfm_row_index__"


class _ShortRepr(reprlib.Repr):
    """`repr` cut short, without first building the repr of a large value (image bytes, long clips)."""

    def __init__(self):
        super().__init__()
        self.maxstring = self.maxother = 60
        self.maxlist = self.maxtuple = self.maxdict = 4
        self.maxlevel = 3

    def repr_bytes(self, value: bytes, level: int) -> str:
        if len(value) <= 16:
            return repr(value)
        return f"{repr(value[:12])[:-1]}...' ({len(value)} bytes)"

    def repr_ndarray(self, value: Any, level: int) -> str:
        return f"array(shape={tuple(value.shape)}, dtype={value.dtype})"

    def repr_Tensor(self, value: Any, level: int) -> str:
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype})"


_SHORT = _ShortRepr()


def short_repr(value: Any) -> str:
    """A repr of `value` of at most 160 characters (bytes, strings, lists and dicts truncated)."""
    text = _SHORT.repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def error_text(err: BaseException, limit: int = 300) -> str:
    """The message of `err` (with its type when the message alone says little, as for `KeyError`)."""
    text = str(err)
    if not text or isinstance(err, (KeyError, IndexError)):
        text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class BadRow:
    """One skipped row.

    Attributes:
        row: where it is: `dataset row 17` (map-style data), `rows.jsonl:12` (a line of a file), `row 40 of
            this process's stream in epoch 0` (streamed data); None until the stream names it.
        error: why it was skipped (the processor's or the parser's message).
        column: the column(s) the row was read from, as written in messages (`'image'`).
        value: a short repr of the bad value.
        batch_index: the row's place in its batch (streams name rows from it).
    """

    row: str | None
    error: str
    column: str | None = None
    value: str | None = None
    batch_index: int = 0

    def __str__(self) -> str:
        where = self.row if self.row is not None else f"row {self.batch_index} of a batch"
        column = f", column {self.column}" if self.column else ""
        value = f", value {self.value}" if self.value is not None else ""
        return f"{where}{column}{value}: {self.error}"


@dataclass(frozen=True)
class BadRowLimits:
    """What a task does with bad rows (its `data` section's `on_bad_sample`, `max_bad_rows_in_a_row`,
    `max_bad_rows`); `where` is the section (`tasks.mae.data`), for messages."""

    where: str
    on_bad_sample: str = "skip"
    max_in_a_row: int = 100
    max_total: int = 1000

    @classmethod
    def of(cls, data: Any, where: str) -> BadRowLimits:
        """The limits of a run config's `DataSection` `data` at `where`."""
        return cls(where, data.on_bad_sample, data.max_bad_rows_in_a_row, data.max_bad_rows)


class TooManyBadRows(ValueError):
    """More bad rows than a task's data section allows (or one, with `on_bad_sample=raise`)."""


class BadRowCounter:
    """Bad rows of one task on one process: in a row (`good` ends a run) and in one pass over the data
    (`new_pass` starts the next); `TooManyBadRows` past either cap, naming the first and the last bad row.

    Args:
        limits: the caps and the config section.
        unit: what is counted, for messages (`rows`, `lines`).
    """

    def __init__(self, limits: BadRowLimits, unit: str = "rows"):
        self.limits, self.unit = limits, unit
        self.in_a_row = self.total = 0
        # The first bad row of this pass and of the current run, and the latest one.
        self.first: BadRow | str | None = None
        self.run_first: BadRow | str | None = None
        self.last: BadRow | str | None = None
        self.scope, self.pass_key = "", None

    def new_pass(self, key: Any = None, scope: str = "") -> None:
        """Start counting the total of pass `key` (e.g. an epoch); `scope` says where, for messages (e.g.
        ` in epoch 2 on this process`)."""
        self.total, self.first, self.pass_key, self.scope = 0, None, key, scope

    def good(self) -> None:
        self.in_a_row, self.run_first = 0, None

    def bad(self, rows: Sequence[BadRow | str], count: int | None = None) -> None:
        """Count `count` bad rows (default: `len(rows)`), described by `rows` (possibly fewer)."""
        count = len(rows) if count is None else count
        if not count:
            return
        if rows:
            self.first = self.first if self.first is not None else rows[0]
            self.run_first = self.run_first if self.run_first is not None else rows[0]
            self.last = rows[-1]
        self.in_a_row += count
        self.total += count
        where = self.limits.where
        if self.limits.on_bad_sample == "raise":
            raise TooManyBadRows(
                f"`{where}`: bad {self.unit[:-1]} {self.last}. Fix the data, or set `{where}.on_bad_sample=skip` to "
                "skip and count bad rows."
            )
        if self.in_a_row > self.limits.max_in_a_row:
            what = f"{self.in_a_row} bad {self.unit} in a row"
            self._stop(what, "max_bad_rows_in_a_row", self.limits.max_in_a_row, self.run_first)
        if self.total > self.limits.max_total:
            self._stop(
                f"{self.total} bad {self.unit}{self.scope}", "max_bad_rows", self.limits.max_total, self.first
            )

    def _stop(self, what: str, field: str, cap: int, first: BadRow | str | None) -> None:
        where = self.limits.where
        examples = f" The first: {first}." if first is not None else ""
        if self.last is not None and self.last is not first:
            examples += f" The last: {self.last}."
        raise TooManyBadRows(
            f"`{where}`: {what} were skipped, more than `{where}.{field}` = {cap}.{examples} Fix the data, raise "
            f"`{where}.{field}` to skip more, or set `{where}.on_bad_sample=raise` to stop at the first bad row."
        )


__all__ = [
    "CARRIER_COLUMNS",
    "ROW_INDEX",
    "BadRow",
    "BadRowCounter",
    "BadRowLimits",
    "TooManyBadRows",
    "error_text",
    "short_repr",
]
