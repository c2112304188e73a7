"""Evaluation of frozen encoders: feature extraction, kNN, linear and ridge probes, forecast errors; and of
the shared space of an `MMFMModel`: cross-modal retrieval, zero-shot classification, emergent retrieval.

    from mmfm.evaluation import evaluate_binding, evaluate_encoder
    report = evaluate_encoder(model, processor, "vision", train, test, output_path="eval/digits.json")
    report = evaluate_binding(model, processor, pairs={"shapes": shapes}, zero_shot={"shapes": (shapes, "vision")})

Scores are computed with Hugging Face `evaluate`, from metric modules shipped in this package
(`metric_modules/`), so they load offline (`load_metric`).
"""

from .binding import EmergentSet, PairedSet, ZeroShotSet, evaluate_binding
from .embeddings import embed_rows
from .features import extract_features, input_columns
from .forecasting import evaluate_forecasts, forecast_errors, seasonal_naive_forecast
from .harness import CLASSIFICATION_TASKS, REGRESSION_TASKS, TASKS, evaluate_encoder, write_report
from .knn import knn_accuracy, knn_class_scores, knn_predict
from .linear_probe import linear_probe
from .metrics import METRIC_NAMES, compute_metric, load_metric, metric_module_path
from .regression import ridge_regression
from .retrieval import chance_recall, cross_modal_retrieval, retrieval_metrics, retrieval_ranks
from .zero_shot import DEFAULT_TEMPLATES, default_templates, zero_shot_accuracy, zero_shot_classifier

__all__ = [
    "CLASSIFICATION_TASKS",
    "DEFAULT_TEMPLATES",
    "METRIC_NAMES",
    "REGRESSION_TASKS",
    "TASKS",
    "EmergentSet",
    "PairedSet",
    "ZeroShotSet",
    "chance_recall",
    "compute_metric",
    "cross_modal_retrieval",
    "default_templates",
    "embed_rows",
    "evaluate_binding",
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
    "retrieval_metrics",
    "retrieval_ranks",
    "ridge_regression",
    "seasonal_naive_forecast",
    "write_report",
    "zero_shot_accuracy",
    "zero_shot_classifier",
]
