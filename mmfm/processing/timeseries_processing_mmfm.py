"""Time-series processor for the mmfm time-series encoder: series -> `past_values`, `past_observed_mask`.

Every output window has exactly `context_length` steps: shorter series are padded (on the left by default,
so the most recent value is always the last step), longer ones raise unless truncation is asked for.
Missing values (NaN, or an explicit `observed_mask`) become 0 with observed 0, which is what the
`past_observed_mask` convention of transformers' time-series models (PatchTST, TimeSeriesTransformer) expects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .mmfm_processing_validation import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_return_tensors,
    describe,
    is_array_like,
    make_batch_feature,
    to_numpy,
)
from .mmfm_processor_config import OwnSettingsMixin

logger = logging.get_logger(__name__)

SCALING_CHOICES = ("none", "standard", "mean")
SIDE_CHOICES = ("left", "right")
MISSING_CHOICES = ("nan", "error")


class MMFMTimeSeriesProcessor(OwnSettingsMixin, FeatureExtractionMixin):
    r"""Turns univariate or multivariate series into fixed-length windows for the mmfm time-series encoder.

    Accepted input: one series, (L,) univariate or (L, C) time-major (numpy array, torch tensor or list of
    numbers for univariate); a list of such series (lengths may differ, channel counts may not); or a 3-D
    array (B, L, C). A nested Python list is read as a list of series, so a single multivariate series must
    be an array, not a list of lists.

    Args:
        context_length: window length L of the output (512).
        num_input_channels: required channel count C; None (default) accepts any, consistent within a batch.
        padding_side: where shorter series are padded: "left" (default, recent values stay at the end) or
            "right".
        truncation: False (default): a series longer than `context_length` raises `ValueError`. True keeps
            `context_length` steps, dropping from `truncation_side`.
        truncation_side: "left" (default: drop the oldest steps, keep the most recent) or "right".
        missing_values: "nan" (default): NaN marks a missing value (value 0, observed 0). "error": NaN raises.
        scaling: "none" (default; the model applies reversible instance normalisation itself), "standard"
            ((x - mean) / std) or "mean" (x / mean |x|), per series and channel over the observed values of
            the window; `loc` and `scale` are returned so predictions can be un-scaled (`x * scale + loc`).
        minimum_scale: lower bound of `scale`, so constant or all-zero channels do not divide by 0 (1e-5).

    Returns (from `__call__`):
        `BatchFeature` with `past_values` float32 (B, L, C) and `past_observed_mask` int64 (B, L, C)
        (1 = observed; padding and missing values are 0 with mask 0), plus `loc` and `scale` float32
        (B, 1, C) when `scaling != "none"`. For the transformers default `return_tensors=None`, lists of
        per-series arrays.
    """

    model_input_names = ["past_values", "past_observed_mask"]
    # `save_pretrained` copies this file and its sibling imports into the folder and writes `auto_map`,
    # so `AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)` loads it without mmfm.
    _auto_class = "AutoFeatureExtractor"
    # This processor's entry in a composite MMFMProcessor's processor_config.json.
    processor_config_key = "timeseries_feature_extractor"

    def __init__(
        self,
        context_length: int = 512,
        num_input_channels: int | None = None,
        padding_side: str = "left",
        truncation: bool = False,
        truncation_side: str = "left",
        missing_values: str = "nan",
        scaling: str = "none",
        minimum_scale: float = 1e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.context_length = check_int("context_length", context_length, minimum=1)
        self.num_input_channels = check_int(
            "num_input_channels", num_input_channels, minimum=1, allow_none=True
        )
        self.padding_side = check_choice("padding_side", padding_side, SIDE_CHOICES)
        self.truncation = check_bool("truncation", truncation)
        self.truncation_side = check_choice("truncation_side", truncation_side, SIDE_CHOICES)
        self.missing_values = check_choice("missing_values", missing_values, MISSING_CHOICES)
        self.scaling = check_choice("scaling", scaling, SCALING_CHOICES)
        if not minimum_scale > 0:
            raise ValueError(f"`minimum_scale` must be > 0, got {minimum_scale!r}.")
        self.minimum_scale = float(minimum_scale)

    def __call__(
        self,
        series: Any,
        observed_mask: Any = None,
        truncation: bool | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Validate, scale and pad one series or a batch of series.

        Args:
            series: see the class docstring.
            observed_mask: optional, same structure and shapes as `series`, 1/True = observed. Values marked 0
                are treated as missing (NaN still marks a missing value too).
            truncation: overrides the processor's `truncation` for this call.
            return_tensors: "pt", "np" or None (default, as in transformers: lists of per-series arrays).

        Returns:
            `BatchFeature` with `past_values` (B, L, C) float32, `past_observed_mask` (B, L, C) int64, and
            `loc`/`scale` (B, 1, C) float32 when scaling is on.
        """
        return_tensors = check_return_tensors(return_tensors)
        truncation = self.truncation if truncation is None else check_bool("truncation", truncation)
        items = _split_batch(series, "series")
        masks = [None] * len(items) if observed_mask is None else _split_batch(observed_mask, "observed_mask")
        if len(masks) != len(items):
            raise ValueError(
                f"`observed_mask` has {len(masks)} series but `series` has {len(items)}: expected one mask "
                "per series."
            )
        channels = self.num_input_channels
        outputs = []
        for i, (value, mask) in enumerate(zip(items, masks, strict=True)):
            field = "series" if len(items) == 1 and not isinstance(series, list | tuple) else f"series[{i}]"
            values, observed = self._validate(value, mask, field)
            if channels is None:
                channels = values.shape[1]
            elif values.shape[1] != channels:
                source = "`num_input_channels`" if self.num_input_channels is not None else "the first series"
                raise ValueError(
                    f"`{field}` has {values.shape[1]} channel(s) but {source} has {channels}: all series "
                    "must have the same channels (time-major (L, C) layout; is it transposed?)."
                )
            values, observed = self._truncate(values, observed, field, truncation)
            outputs.append(self._scale_and_pad(values, observed, field))
        data = {key: np.stack([out[key] for out in outputs]) for key in outputs[0]}
        return make_batch_feature(data, return_tensors)

    def _validate(self, value: Any, mask: Any, field: str) -> tuple[np.ndarray, np.ndarray]:
        """-> (values (L, C) float64, observed (L, C) bool), checking rank, emptiness and finiteness."""
        array = to_numpy(value, field, kinds="iuf")
        if array.ndim not in (1, 2):
            raise ValueError(
                f"`{field}` must have rank 1 (L,) or 2 (L, C), got {describe(array)}. A batch is a list of "
                "series or a (B, L, C) array."
            )
        if array.shape[0] == 0:
            raise ValueError(f"`{field}` is an empty series (L=0): expected at least one time step.")
        values = array.astype(np.float64).reshape(array.shape[0], -1)
        if values.shape[1] == 0:
            raise ValueError(f"`{field}` has 0 channels ({describe(array)}): expected at least one.")
        check_finite(values, field, allow_nan=True, hint="Mark missing values with NaN, not Inf.")
        nan = np.isnan(values)
        if self.missing_values == "error" and nan.any():
            check_finite(
                values,
                field,
                hint="`missing_values='error'`; use `missing_values='nan'` to treat NaN as missing.",
            )
        observed = ~nan
        if mask is not None:
            mask_field = field.replace("series", "observed_mask", 1)
            given = to_numpy(mask, mask_field, kinds="iufb")
            same_shape = given.ndim in (1, 2) and given.shape[0] == values.shape[0]
            if not same_shape or given.reshape(given.shape[0], -1).shape != values.shape:
                raise ValueError(
                    f"`{mask_field}` must have the shape of `{field}` {tuple(array.shape)}, got "
                    f"{describe(given)}."
                )
            if not np.isin(given, (0, 1)).all():
                raise ValueError(
                    f"`{mask_field}` must hold only 0/1 (or bools), got values {np.unique(given)[:5]}."
                )
            observed &= given.reshape(values.shape).astype(bool)
        return values, observed

    def _truncate(
        self, values: np.ndarray, observed: np.ndarray, field: str, truncation: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        length = values.shape[0]
        if length <= self.context_length:
            return values, observed
        if not truncation:
            raise ValueError(
                f"`{field}` has {length} time steps, more than `context_length`={self.context_length}. Pass "
                "`truncation=True` to keep the "
                f"{'most recent' if self.truncation_side == 'left' else 'first'} {self.context_length} "
                "steps, or raise `context_length`."
            )
        logger.info(
            f"Truncating {field} from {length} to {self.context_length} steps ({self.truncation_side})."
        )
        keep = (
            slice(-self.context_length, None)
            if self.truncation_side == "left"
            else slice(0, self.context_length)
        )
        return values[keep], observed[keep]

    def _scale_and_pad(self, values: np.ndarray, observed: np.ndarray, field: str) -> dict[str, np.ndarray]:
        counts = observed.sum(axis=0)
        if (counts == 0).any():
            channel = int(np.flatnonzero(counts == 0)[0])
            raise ValueError(
                f"`{field}` has no observed value in channel {channel} (of {values.shape[1]}) within its "
                f"{values.shape[0]}-step window: expected at least one non-missing value per channel. Drop "
                "the channel or the series."
            )
        values = np.where(observed, values, 0.0)
        loc = np.zeros((1, values.shape[1]))
        scale = np.ones((1, values.shape[1]))
        if self.scaling == "standard":
            loc = values.sum(axis=0, keepdims=True) / counts
            variance = (np.where(observed, values - loc, 0.0) ** 2).sum(axis=0, keepdims=True) / counts
            scale = np.sqrt(variance)
        elif self.scaling == "mean":
            scale = np.abs(values).sum(axis=0, keepdims=True) / counts
        if self.scaling != "none":
            scale = np.maximum(scale, self.minimum_scale)
            values = np.where(observed, (values - loc) / scale, 0.0)
        pad = self.context_length - values.shape[0]
        where = ((pad, 0) if self.padding_side == "left" else (0, pad), (0, 0))
        out = {
            "past_values": np.pad(values, where).astype(np.float32),
            "past_observed_mask": np.pad(observed, where).astype(np.int64),
        }
        if self.scaling != "none":
            out["loc"] = loc.astype(np.float32)
            out["scale"] = scale.astype(np.float32)
        return out


def _split_batch(series: Any, field: str) -> list[Any]:
    """One series, a list of series or a (B, L, C) array -> list of series."""
    if isinstance(series, list | tuple):
        if len(series) == 0:
            raise ValueError(f"`{field}` is an empty list: expected a series or a list of series.")
        nested = [is_array_like(item) for item in series]
        if all(nested):
            return list(series)
        if any(nested):
            raise ValueError(
                f"`{field}` mixes ranks: item {nested.index(True)} is {describe(series[nested.index(True)])} "
                f"but item {nested.index(False)} is a number. Pass one series or a list of series."
            )
        return [series]
    if is_array_like(series) and getattr(series, "ndim", 0) == 3:
        if series.shape[0] == 0:
            raise ValueError(
                f"`{field}` is an empty batch ({describe(series)}): expected at least one series."
            )
        return list(series)
    return [series]


__all__ = ["MMFMTimeSeriesProcessor"]
