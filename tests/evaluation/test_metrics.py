"""The shipped metric modules load offline through `evaluate.load(path)` and agree with scikit-learn."""

import socket

import evaluate
import numpy as np
import pytest
from sklearn import metrics as skm

from mmfm.evaluation import METRIC_NAMES, compute_metric, load_metric, metric_module_path

RNG = np.random.default_rng(0)
LABELS_PRED, LABELS_TRUE = RNG.integers(0, 4, 200), RNG.integers(0, 4, 200)
VALUES_PRED, VALUES_TRUE = RNG.normal(size=300), RNG.normal(size=300)
SKLEARN = {
    "accuracy": lambda: skm.accuracy_score(LABELS_TRUE, LABELS_PRED),
    "f1": lambda: skm.f1_score(LABELS_TRUE, LABELS_PRED, average="macro"),
    "mse": lambda: skm.mean_squared_error(VALUES_TRUE, VALUES_PRED),
    "mae": lambda: skm.mean_absolute_error(VALUES_TRUE, VALUES_PRED),
    "r2": lambda: skm.r2_score(VALUES_TRUE, VALUES_PRED),
}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_metric_loads_offline_by_path_and_agrees_with_sklearn(name, no_network):
    path = metric_module_path(name)
    assert path.endswith(f"metric_modules/{name}/{name}.py")
    metric = evaluate.load(path, keep_in_memory=True)
    assert isinstance(metric, evaluate.EvaluationModule)
    predictions, references = (
        (LABELS_PRED, LABELS_TRUE) if name in ("accuracy", "f1") else (VALUES_PRED, VALUES_TRUE)
    )
    result = metric.compute(predictions=predictions, references=references)
    assert result[name] == pytest.approx(SKLEARN[name](), rel=1e-12)
    assert compute_metric(name, predictions, references) == pytest.approx(SKLEARN[name](), rel=1e-12)


def test_load_metric_batches_and_options(no_network):
    metric = load_metric("accuracy", keep_in_memory=True)
    metric.add_batch(predictions=LABELS_PRED[:50], references=LABELS_TRUE[:50])
    metric.add_batch(predictions=LABELS_PRED[50:], references=LABELS_TRUE[50:])
    assert metric.compute()["accuracy"] == pytest.approx(skm.accuracy_score(LABELS_TRUE, LABELS_PRED))
    f1 = compute_metric("f1", LABELS_PRED, LABELS_TRUE, average="weighted")
    assert f1 == pytest.approx(skm.f1_score(LABELS_TRUE, LABELS_PRED, average="weighted"))
    # evaluate.combine works on the local modules too.
    combined = evaluate.combine(
        [load_metric("mse", keep_in_memory=True), load_metric("mae", keep_in_memory=True)]
    )
    result = combined.compute(predictions=VALUES_PRED, references=VALUES_TRUE)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(VALUES_TRUE, VALUES_PRED))


def test_metric_errors_are_named():
    with pytest.raises(ValueError, match="Unknown metric 'bleu'"):
        load_metric("bleu")
    with pytest.raises(ValueError, match="one prediction per reference"):
        compute_metric("accuracy", [0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        compute_metric("mae", [], [])


def test_mase_scales_each_series_by_its_context_and_leaves_out_constant_ones():
    from mmfm.evaluation.metrics import mean_absolute_scaled_error

    predictions = np.array([[[1.0], [2.0]], [[5.0], [5.0]]])  # (N=2, H=2, C=1)
    references = np.array([[[0.0], [5.0]], [[0.0], [0.0]]])
    observed = np.ones_like(references)
    # Series 0: MAE (1 + 3) / 2 = 2 over a context changing by 1 per step -> 2; series 1's context is constant.
    assert mean_absolute_scaled_error(predictions, references, observed, np.array([[1.0], [0.0]])) == 2.0
    observed[0, 1, 0] = 0  # an unobserved target is left out: MAE 1
    assert mean_absolute_scaled_error(predictions, references, observed, np.array([[1.0], [0.0]])) == 1.0
    with pytest.raises(ValueError, match="MASE is undefined"):
        mean_absolute_scaled_error(predictions, references, observed, np.zeros((2, 1)))
