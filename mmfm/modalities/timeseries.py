"""The time-series modality: (L, C) series with missing values -> `past_values` and `past_observed_mask`;
patches (per channel) count throughput."""

from __future__ import annotations

import numpy as np

from ..models import MMFMTimeSeriesModel
from ..processing import MMFMTimeSeriesProcessor
from .spec import ModalitySpec


def build_processor(config, tokenizer=None) -> MMFMTimeSeriesProcessor:
    return MMFMTimeSeriesProcessor(
        context_length=config.context_length, num_input_channels=config.num_input_channels
    )


def series_items(rows: dict[str, list], text_column: str) -> tuple[list[np.ndarray], dict]:
    # A nested list would read as a list of univariate series: give each (L, C) series as an array.
    # None (an Arrow null) becomes NaN, the processor's mark of a missing value.
    return [np.asarray(series, dtype=np.float32) for series in rows["past_values"]], {}


def count_patches(inputs, config) -> int:
    batch, _, channels = inputs["past_values"].shape
    return int(batch * channels * config.num_patches)


SPEC = ModalitySpec(
    name="timeseries",
    encoder_class=MMFMTimeSeriesModel,
    processor_class=MMFMTimeSeriesProcessor,
    build_processor=build_processor,
    required_columns=("past_values",),
    row_adapter=series_items,
    unit="patches",
    count_units=count_patches,
    default_objective="ts_masked",
)
