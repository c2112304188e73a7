"""Metrics through Hugging Face `evaluate`, loaded offline from the metric modules shipped with mmfm.

`evaluate.load("accuracy")` fails without the network: the evaluate wheel ships no metric scripts
(`notes/stack.md` §6). A local module folder loaded by path works offline, so mmfm ships its own
(`metric_modules/<name>/<name>.py`, each an `evaluate.Metric` computing with numpy/scikit-learn) and
`load_metric` hands evaluate the path, from the source tree or an installed wheel alike.

    metric = load_metric("accuracy")
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])   # {"accuracy": 0.666...}
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import as_file, files
from importlib.resources.abc import Traversable
from typing import Any

import evaluate
import numpy as np

logger = logging.getLogger(__name__)

METRIC_NAMES = ("accuracy", "f1", "mse", "mae", "r2")
_METRIC_PACKAGE_DIR = "metric_modules"


def _metric_resource(name: str) -> Traversable:
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; mmfm ships {METRIC_NAMES}.")
    resource = files(__package__).joinpath(_METRIC_PACKAGE_DIR).joinpath(name).joinpath(f"{name}.py")
    if not resource.is_file():
        raise FileNotFoundError(
            f"The metric module {name!r} is missing at {resource}: mmfm was installed without its package "
            "data. Reinstall it from a wheel or source tree built with "
            '`[tool.setuptools.package-data] "mmfm.evaluation" = ["metric_modules/*/*.py"]`.'
        )
    return resource


def metric_module_path(name: str) -> str:
    """Where a shipped metric module's script lives (`.../metric_modules/<name>/<name>.py`).

    Raises:
        ValueError: `name` is not one of `METRIC_NAMES`.
        FileNotFoundError: the module is missing from the installation (package data not installed).
    """
    return str(_metric_resource(name))


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load a shipped metric with `evaluate.load(<local path>)`, which works offline.

    Args:
        name: one of `METRIC_NAMES` ("accuracy", "f1", "mse", "mae", "r2").
        **kwargs: passed to `evaluate.load` (e.g. `keep_in_memory=True`, `experiment_id`).

    Returns:
        A fresh `evaluate.EvaluationModule`; call `.compute(predictions=..., references=...)` or
        `.add_batch(...)` then `.compute()`.
    """
    # `as_file` returns the path itself for a package on disk and extracts a temporary copy from a zipped
    # one; evaluate copies the script into its module cache, so that copy may go once loading returns.
    with as_file(_metric_resource(name)) as path:
        return evaluate.load(str(path), **kwargs)


@cache
def _cached_metric(name: str) -> evaluate.EvaluationModule:
    # `compute(predictions=..., references=...)` starts from an empty buffer, so one in-memory instance
    # per metric can serve every call of this process.
    return load_metric(name, keep_in_memory=True)


def compute_metric(name: str, predictions: Any, references: Any, **kwargs: Any) -> float:
    """Compute one shipped metric through `evaluate` and return its value as a Python float.

    Args:
        name: one of `METRIC_NAMES`.
        predictions: shape (N,) labels (accuracy, f1) or numbers (mse, mae, r2).
        references: shape (N,), same kind as `predictions`.
        **kwargs: the metric's own options (e.g. `average="macro"` for f1).

    Returns:
        The metric value, e.g. `compute_metric("accuracy", [0, 1], [0, 0]) == 0.5`.
    """
    predictions = np.asarray(predictions).reshape(-1)
    references = np.asarray(references).reshape(-1)
    if predictions.shape != references.shape:
        raise ValueError(
            f"`predictions` has {predictions.size} values but `references` has {references.size}: expected "
            "one prediction per reference."
        )
    if predictions.size == 0:
        raise ValueError(f"Cannot compute {name!r} on no values: `predictions` and `references` are empty.")
    result = _cached_metric(name).compute(predictions=predictions, references=references, **kwargs)
    return float(result[name])


def mean_absolute_scaled_error(
    predictions: np.ndarray, references: np.ndarray, observed: np.ndarray, scale: np.ndarray
) -> float:
    """MASE (Hyndman & Koehler, 2006): each series' and channel's forecast MAE over `scale`, the mean absolute
    one-step change of its own context (the in-sample last-value forecast's error), averaged; 1.0 matches
    repeating the last value one step ahead, scale-free across series of different units.

    Args:
        predictions, references: (N, H, C) forecasts and true values.
        observed: (N, H, C), 1 where the reference is observed (the others are left out).
        scale: (N, C); series and channels whose scale is 0 or NaN (a constant or unobserved context) and
            those with no observed reference are left out.

    Raises:
        ValueError: shapes that do not match, or no series and channel left to score.
    """
    predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
    observed, scale = np.asarray(observed, np.float64), np.asarray(scale, np.float64)
    if predictions.shape != references.shape or observed.shape != references.shape or predictions.ndim != 3:
        raise ValueError(
            f"`predictions` {predictions.shape}, `references` {references.shape} and `observed` {observed.shape} "
            "must share one (N, H, C) shape."
        )
    if scale.shape != (references.shape[0], references.shape[2]):
        raise ValueError(
            f"`scale` must have shape (N, C) = {(references.shape[0], references.shape[2])}, got {scale.shape}."
        )
    counts = observed.sum(1)  # (N, C)
    errors = (np.abs(predictions - references) * observed).sum(1) / np.maximum(counts, 1)
    keep = (counts > 0) & np.isfinite(scale) & (scale > 0)
    if not keep.any():
        raise ValueError("No series has an observed target and a context that changes: MASE is undefined.")
    return float(np.mean(errors[keep] / scale[keep]))


__all__ = [
    "METRIC_NAMES",
    "compute_metric",
    "load_metric",
    "mean_absolute_scaled_error",
    "metric_module_path",
]
