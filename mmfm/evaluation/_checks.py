"""Input checks and label encoding shared by the probes (kNN, linear probe, ridge)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_numpy(values: Any) -> np.ndarray:
    """A numpy view of an array, tensor (any device) or nested list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
        if values.dtype == torch.bfloat16:
            values = values.float()
    return np.asarray(values)


def check_features(features: Any, name: str, dim: int | None = None) -> np.ndarray:
    """Validate a (N, D) feature matrix of finite numbers and return it as float32 numpy.

    Raises:
        ValueError: naming `name`, when the shape is not (N, D) with N >= 1 (and D == `dim` if given) or a
            value is NaN/infinite.
    """
    array = to_numpy(features)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be shaped (N, D), got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: expected at least one row.")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(
            f"`{name}` has {array.shape[1]} dimensions but the training features have {dim}: both splits "
            "must come from the same encoder."
        )
    if array.dtype.kind not in "iufb":
        raise ValueError(f"`{name}` must hold numbers, got dtype {array.dtype}.")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array).all(axis=1)).sum())
        raise ValueError(f"`{name}` holds NaN or infinite values in {bad} row(s): they cannot be compared.")
    return array


def check_labels(labels: Any, num_rows: int, name: str) -> np.ndarray:
    """Validate a (N,) label vector with one label per feature row."""
    array = to_numpy(labels)
    if array.ndim != 1 or array.shape[0] != num_rows:
        raise ValueError(
            f"`{name}` must be shaped ({num_rows},), one label per feature row, got shape {array.shape}."
        )
    return array


def check_class_labels(labels: Any, num_rows: int, name: str) -> np.ndarray:
    """`check_labels`, and refuse float labels with a fractional part (a regression target, not classes)."""
    array = check_labels(labels, num_rows, name)
    if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise ValueError(
            f"`{name}` holds non-integer numbers: classification needs class labels. For a continuous "
            "target use a regression probe (`ridge_regression`, task 'ridge')."
        )
    return array


def encode_labels(labels: Any, classes: np.ndarray) -> np.ndarray:
    """Index (N,) int64 of each label in the sorted `classes` (K,); -1 for a label not among them."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    index = np.searchsorted(classes, labels).clip(max=len(classes) - 1)
    return np.where(classes[index] == labels, index, -1).astype(np.int64)
