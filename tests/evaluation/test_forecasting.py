"""Seasonal-naive forecasts and forecast errors with hand-computed answers."""

import math

import numpy as np
import pytest
import torch

from mmfm.evaluation import evaluate_forecasts, forecast_errors, seasonal_naive_forecast


def _periodic(batch: int, length: int, channels: int, season: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=(batch, season, channels))
    return np.tile(pattern, (1, math.ceil(length / season), 1))[:, :length]


def test_periodic_series_has_zero_seasonal_naive_error():
    series = _periodic(batch=3, length=50, channels=2, season=7)  # 50 is not a multiple of 7
    history, future = series[:, :38], series[:, 38:]
    forecast = seasonal_naive_forecast(history, horizon=12, season=7)
    assert forecast.shape == (3, 12, 2)
    np.testing.assert_array_equal(forecast, future)
    errors = forecast_errors(forecast, future)
    assert errors == {"mse": 0.0, "mae": 0.0, "num_observed": 72}


def test_naive_and_seasonal_values():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0])[None, :, None]
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 3, season=1)[0, :, 0], [5, 5, 5])
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 5, season=2)[0, :, 0], [4, 5, 4, 5, 4])
    np.testing.assert_array_equal(
        seasonal_naive_forecast(torch.tensor(history), 2, season=5)[0, :, 0], [1, 2]
    )


def test_missing_history_values_come_from_an_earlier_season():
    history = np.array([1.0, 2.0, 3.0, 10.0, np.nan, 30.0])[None, :, None]  # season 3, middle value missing
    np.testing.assert_array_equal(seasonal_naive_forecast(history, 3, season=3)[0, :, 0], [10, 2, 30])
    never = np.array([np.nan, 1.0])[None, :, None]
    assert np.isnan(seasonal_naive_forecast(never, 2, season=2)[0, 0, 0])


def test_hand_computed_errors_exclude_missing_values():
    predictions = np.array([[[1.0], [2.0], [3.0], [4.0]]])
    targets = np.array([[[2.0], [2.0], [100.0], [1.0]]])
    mask = np.array([[[1], [1], [0], [1]]])
    # Observed errors: -1, 0, 3 -> MSE (1 + 0 + 9) / 3, MAE (1 + 0 + 3) / 3.
    expected = {"mse": 10 / 3, "mae": 4 / 3, "num_observed": 3}
    assert forecast_errors(predictions, targets, mask) == pytest.approx(expected)
    targets_nan = targets.copy()
    targets_nan[0, 2, 0] = np.nan  # NaN marks a missing value as well
    assert forecast_errors(predictions, targets_nan) == pytest.approx(expected)
    # A missing target may have any prediction, even NaN.
    predictions[0, 2, 0] = np.nan
    assert forecast_errors(predictions, targets, mask) == pytest.approx(expected)


def test_ratios_against_the_seasonal_naive_baseline():
    history = np.array([[[0.0], [0.0], [2.0]]])
    targets = np.array([[[4.0], [6.0]]])
    model = np.array([[[3.0], [5.0]]])
    # Naive (season 1) forecast 2, 2: errors 2, 4 -> MSE 10, MAE 3. Model errors 1, 1 -> MSE 1, MAE 1.
    result = evaluate_forecasts(model, targets, history, season=1)
    assert result["model"] == pytest.approx({"mse": 1.0, "mae": 1.0, "num_observed": 2})
    assert result["seasonal_naive"] == pytest.approx({"mse": 10.0, "mae": 3.0, "num_observed": 2})
    assert result["ratio"] == pytest.approx({"mse": 0.1, "mae": 1 / 3})
    assert (result["season"], result["horizon"]) == (1, 2)
    # A perfect baseline: an imperfect model is infinitely worse, a perfect one equal.
    flat = np.full((1, 2, 1), 2.0)
    assert evaluate_forecasts(model, flat, history)["ratio"]["mae"] == math.inf
    assert evaluate_forecasts(flat, flat, history)["ratio"] == {"mse": 1.0, "mae": 1.0}


def test_forecast_errors_are_named():
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        seasonal_naive_forecast(np.zeros((4, 5)), 2)
    with pytest.raises(ValueError, match="longer than the history"):
        seasonal_naive_forecast(np.zeros((1, 3, 1)), 2, season=4)
    with pytest.raises(ValueError, match="`horizon` must be a positive integer"):
        seasonal_naive_forecast(np.zeros((1, 3, 1)), 0)
    with pytest.raises(ValueError, match="same"):
        forecast_errors(np.zeros((1, 2, 1)), np.zeros((1, 3, 1)))
    with pytest.raises(ValueError, match="No target value is observed"):
        forecast_errors(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        forecast_errors(np.full((1, 2, 1), np.nan), np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="number of series"):
        evaluate_forecasts(np.zeros((2, 2, 1)), np.zeros((2, 2, 1)), np.zeros((3, 4, 1)))
