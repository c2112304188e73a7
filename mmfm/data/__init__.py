"""Data: the demo corpus (`mmfm.data.demo`), sources as users store them (`sources`, with the tolerant
JSON-lines reader `jsonlines`), text packing (`packing`), the objectives' text corruption (`collators`),
training batches (`batching`), paired rows for contrastive binding of modalities and their collator
(`paired`) and how bad rows are described, counted and capped (`bad_rows`). Training and evaluation
import from here."""

from .bad_rows import BadRow, BadRowCounter, BadRowLimits, TooManyBadRows
from .batching import BatchStream, EpochBatchSampler, RowCollator
from .packing import pack_texts
from .paired import (
    PAIRED_DEMO_SUBSETS,
    PairedDemoSubset,
    PairedRowCollator,
    load_paired_demo,
    paired_modalities,
)
from .sources import first_row, keep_values, load_labelled_splits, load_local, load_rows

__all__ = [
    "PAIRED_DEMO_SUBSETS",
    "BadRow",
    "BadRowCounter",
    "BadRowLimits",
    "BatchStream",
    "EpochBatchSampler",
    "PairedDemoSubset",
    "PairedRowCollator",
    "RowCollator",
    "TooManyBadRows",
    "first_row",
    "keep_values",
    "load_labelled_splits",
    "load_local",
    "load_paired_demo",
    "load_rows",
    "pack_texts",
    "paired_modalities",
]
