"""Data: the demo corpus (`mmfm.data.demo`), sources as users store them (`sources`, with the tolerant
JSON-lines reader `jsonlines`), text packing (`packing`), the objectives' text corruption (`collators`),
training batches (`batching`) and how bad rows are described, counted and capped (`bad_rows`). Training and
evaluation import from here."""

from .bad_rows import BadRow, BadRowCounter, BadRowLimits, TooManyBadRows
from .batching import BatchStream, EpochBatchSampler, RowCollator
from .packing import pack_texts
from .sources import first_row, keep_values, load_labelled_splits, load_local, load_rows

__all__ = [
    "BadRow",
    "BadRowCounter",
    "BadRowLimits",
    "BatchStream",
    "EpochBatchSampler",
    "RowCollator",
    "TooManyBadRows",
    "first_row",
    "keep_values",
    "load_labelled_splits",
    "load_local",
    "load_rows",
    "pack_texts",
]
