"""Data: the demo corpus (`mmfm.data.demo`), sources as users store them (`sources`), text packing
(`packing`), the objectives' text corruption (`collators`) and training batches (`batching`). Training and
evaluation import from here."""

from .batching import BatchStream, EpochBatchSampler, RowCollator
from .packing import pack_texts
from .sources import first_row, keep_values, load_labelled_splits, load_local, load_rows

__all__ = [
    "BatchStream",
    "EpochBatchSampler",
    "RowCollator",
    "first_row",
    "keep_values",
    "load_labelled_splits",
    "load_local",
    "load_rows",
    "pack_texts",
]
