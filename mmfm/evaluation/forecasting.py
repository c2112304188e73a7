"""Forecast errors and the seasonal-naive baseline they are judged against.

Arrays are time-major like transformers' time-series models: history `(B, L, C)` (L past steps),
predictions and targets `(B, H, C)` (H future steps), in the data's original units. Missing target
values (an `observed_mask` of 0, or NaN) are excluded from every error, and the count of values scored
is returned, so nothing is skipped silently.

The seasonal-naive forecast repeats the last observed season (Hyndman & Athanasopoulos, "Forecasting:
Principles and Practice", §5.2); season 1 is the naive last-value forecast. Dividing a model's error by
the seasonal-naive error on the same targets gives a relative error in the spirit of MASE (Hyndman &
Koehler 2006): below 1 the model beats the baseline.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ._checks import to_numpy
from .metrics import compute_metric

logger = logging.getLogger(__name__)


def _check_series(values, name: str) -> np.ndarray:
    array = to_numpy(values)
    if array.ndim != 3:
        raise ValueError(
            f"`{name}` must be shaped (B, T, C) (batch, time steps, channels), got shape {array.shape}; "
            "add a channel axis (`x[..., None]`) to univariate series."
        )
    if array.dtype.kind not in "iufb":
        raise ValueError(f"`{name}` must hold numbers, got dtype {array.dtype}.")
    return array.astype(np.float64)


def seasonal_naive_forecast(history, horizon: int, season: int = 1) -> np.ndarray:
    """Forecast by repeating the last season of each series: y[L + h] = y[L - season + (h mod season)].

    A value missing (NaN) in the last season is taken from the latest earlier season where it is
    observed; it stays NaN only if that phase of the season is never observed in the history.

    Args:
        history: (B, L, C) past values, NaN where missing; L >= `season`.
        horizon: H, number of future steps to forecast (>= 1).
        season: period of the seasonality in steps (e.g. 12 for monthly data with a yearly cycle);
            1 repeats the last value.

    Returns:
        (B, H, C) float64 forecast.
    """
    history = _check_series(history, "history")
    for name, value in (("horizon", horizon), ("season", season)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    length = history.shape[1]
    if season > length:
        raise ValueError(
            f"`season`={season} is longer than the history ({length} steps): the last season is not known. "
            "Pass a longer history or a shorter season."
        )
    # (B, n_seasons, season, C), most recent season first; steps before the history start count as missing.
    n_seasons = math.ceil(length / season)
    padded = np.full((history.shape[0], n_seasons * season, history.shape[2]), np.nan)
    padded[:, n_seasons * season - length :] = history
    seasons = padded.reshape(history.shape[0], n_seasons, season, history.shape[2])[:, ::-1]
    last = seasons[:, 0].copy()
    for earlier in seasons[:, 1:].transpose(1, 0, 2, 3):
        missing = np.isnan(last)
        if not missing.any():
            break
        last[missing] = earlier[missing]
    repeats = math.ceil(horizon / season)
    return np.tile(last, (1, repeats, 1))[:, :horizon]


def forecast_errors(predictions, targets, observed_mask=None) -> dict:
    """Mean squared and mean absolute error over the observed target values, through `evaluate`.

    Args:
        predictions: (B, H, C) forecasts.
        targets: (B, H, C) true values; NaN marks a missing value.
        observed_mask: optional (B, H, C), 1/True where the target is observed, 0 where missing.

    Returns:
        `{"mse": float, "mae": float, "num_observed": int}` over the observed values only.

    Raises:
        ValueError: shapes differ, nothing is observed, or a prediction is NaN/infinite where the target
            is observed.
    """
    predictions = _check_series(predictions, "predictions")
    targets = _check_series(targets, "targets")
    if predictions.shape != targets.shape:
        raise ValueError(
            f"`predictions` has shape {predictions.shape} but `targets` has {targets.shape}: expected the "
            "same (B, H, C)."
        )
    observed = ~np.isnan(targets)
    if observed_mask is not None:
        mask = to_numpy(observed_mask)
        if mask.shape != targets.shape:
            raise ValueError(f"`observed_mask` has shape {mask.shape} but `targets` has {targets.shape}.")
        observed &= mask.astype(bool)
    if not observed.any():
        raise ValueError("No target value is observed (all masked or NaN): the errors are undefined.")
    bad = int((~np.isfinite(predictions[observed])).sum())
    if bad:
        raise ValueError(f"`predictions` holds {bad} NaN or infinite value(s) where the target is observed.")
    excluded = observed.size - int(observed.sum())
    if excluded:
        logger.info(
            "Forecast errors: %d of %d target values are missing and excluded.", excluded, observed.size
        )
    return {
        "mse": compute_metric("mse", predictions[observed], targets[observed]),
        "mae": compute_metric("mae", predictions[observed], targets[observed]),
        "num_observed": int(observed.sum()),
    }


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    # A perfect baseline: any model error is infinitely worse, a perfect model is as good.
    return math.inf if numerator > 0 else 1.0


def evaluate_forecasts(model_predictions, targets, history, season: int = 1, observed_mask=None) -> dict:
    """Score model forecasts against the targets and against the seasonal-naive baseline.

    Args:
        model_predictions: (B, H, C) model forecasts, in the targets' units.
        targets: (B, H, C) true future values, NaN where missing.
        history: (B, L, C) the past values the forecasts were made from (for the baseline).
        season: period for the seasonal-naive baseline (1 = last value).
        observed_mask: optional (B, H, C) mask of observed targets (see `forecast_errors`).

    Returns:
        `{"model": {"mse", "mae", "num_observed"}, "seasonal_naive": {...}, "ratio": {"mse", "mae"},
        "season": int, "horizon": int}`, where `ratio` is model error / seasonal-naive error (< 1: the model
        beats the baseline; a zero baseline error gives inf, or 1.0 when the model is also exact).
    """
    targets_array = _check_series(targets, "targets")
    history_array = _check_series(history, "history")
    batch, horizon, channels = targets_array.shape
    if history_array.shape[0] != batch or history_array.shape[2] != channels:
        raise ValueError(
            f"`history` has shape {history_array.shape} but `targets` has {targets_array.shape}: expected the "
            "same number of series (B) and channels (C)."
        )
    baseline = seasonal_naive_forecast(history_array, horizon, season)
    model = forecast_errors(model_predictions, targets_array, observed_mask)
    naive = forecast_errors(baseline, targets_array, observed_mask)
    return {
        "model": model,
        "seasonal_naive": naive,
        "ratio": {name: _ratio(model[name], naive[name]) for name in ("mse", "mae")},
        "season": int(season),
        "horizon": int(horizon),
    }


__all__ = ["evaluate_forecasts", "forecast_errors", "seasonal_naive_forecast"]
