"""Evaluation of frozen encoders: feature extraction, kNN, linear and ridge probes, forecast errors.

    from mmfm.evaluation import evaluate_encoder
    report = evaluate_encoder(model, processor, "vision", train, test, output_path="eval/digits.json")

Scores are computed with Hugging Face `evaluate`, from metric modules shipped in this package
(`metric_modules/`), so they load offline (`load_metric`).
"""

from .features import extract_features, input_columns
from .forecasting import evaluate_forecasts, forecast_errors, seasonal_naive_forecast
from .harness import CLASSIFICATION_TASKS, REGRESSION_TASKS, TASKS, evaluate_encoder, write_report
from .knn import knn_accuracy, knn_class_scores, knn_predict
from .linear_probe import linear_probe
from .metrics import METRIC_NAMES, compute_metric, load_metric, metric_module_path
from .regression import ridge_regression

__all__ = [
    "CLASSIFICATION_TASKS",
    "METRIC_NAMES",
    "REGRESSION_TASKS",
    "TASKS",
    "compute_metric",
    "evaluate_encoder",
    "evaluate_forecasts",
    "extract_features",
    "forecast_errors",
    "input_columns",
    "knn_accuracy",
    "knn_class_scores",
    "knn_predict",
    "linear_probe",
    "load_metric",
    "metric_module_path",
    "ridge_regression",
    "seasonal_naive_forecast",
    "write_report",
]
