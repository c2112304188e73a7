"""Linear and ridge probes on synthetic features with known answers."""

import logging

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmfm.evaluation import linear_probe, ridge_regression


def _clusters(n_per_class: int, seed: int, spread: float = 0.5, num_classes: int = 3, dim: int = 8):
    rng = np.random.default_rng(seed)
    centres = np.eye(num_classes, dim) * 4.0
    labels = np.repeat(np.arange(num_classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize("method", ["sklearn", "torch"])
def test_separated_clusters_are_perfect(method):
    train, labels = _clusters(40, seed=0)
    test, test_labels = _clusters(20, seed=1)
    result = linear_probe(train, labels, test, test_labels, method=method, epochs=30)
    assert result["accuracy"] == 1.0
    assert result["macro_f1"] == 1.0
    assert result["method"] == method


@pytest.mark.parametrize("method", ["sklearn", "torch"])
def test_shuffled_labels_give_chance(method):
    train, labels = _clusters(200, seed=0, spread=3.0)
    test, test_labels = _clusters(200, seed=1, spread=3.0)
    shuffled = np.random.default_rng(5).permutation(labels)
    result = linear_probe(train, shuffled, test, test_labels, method=method, epochs=10)
    assert 0.2 < result["accuracy"] < 0.47  # chance is 1/3
    assert 0.2 < result["macro_f1"] < 0.47


def test_sklearn_probe_matches_a_direct_fit_and_scores_macro_f1():
    train, labels = _clusters(30, seed=2, spread=2.0)
    test, test_labels = _clusters(30, seed=3, spread=2.0)
    scaler = StandardScaler().fit(train)
    direct = LogisticRegression(C=0.5, max_iter=5000).fit(scaler.transform(train), labels)
    predictions = direct.predict(scaler.transform(test))
    recalls = [np.mean(predictions[test_labels == c] == c) for c in range(3)]
    precisions = [np.mean(test_labels[predictions == c] == c) for c in range(3)]
    f1 = np.mean([2 * p * r / (p + r) for p, r in zip(precisions, recalls)])
    result = linear_probe(train, labels, test, test_labels, C=0.5)
    assert result["accuracy"] == pytest.approx(np.mean(predictions == test_labels))
    assert result["macro_f1"] == pytest.approx(f1)
    assert result["C"] == 0.5


def test_C_is_chosen_on_the_training_split_only():
    train, labels = _clusters(30, seed=0, spread=2.0)
    test, test_labels = _clusters(30, seed=1, spread=2.0)
    first = linear_probe(train, labels, test, test_labels, Cs=[1e-4, 1.0, 100.0], cv=3)
    # Changing the test labels cannot change the chosen C.
    second = linear_probe(train, labels, test, (test_labels + 1) % 3, Cs=[1e-4, 1.0, 100.0], cv=3)
    assert first["C"] == second["C"] != 1e-4  # so strong a penalty underfits
    assert first["accuracy"] > 0.8


def test_cross_validation_folds_follow_the_smallest_class(caplog):
    train = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    labels = np.array([0, 0, 0, 1, 1])
    with caplog.at_level(logging.WARNING, logger="mmfm.evaluation"):
        result = linear_probe(train, labels, train, labels, Cs=[1.0, 10.0], cv=5)
    assert result["accuracy"] == 1.0
    assert "2 folds instead of cv=5" in caplog.text
    with pytest.raises(ValueError, match="at least 2 training samples per class"):
        linear_probe(train[:4], labels[:4], train, labels, Cs=[1.0])


def test_probe_errors_are_named():
    train, labels = _clusters(5, seed=0)
    with pytest.raises(ValueError, match="single class"):
        linear_probe(train, np.zeros(len(train)), train, labels)
    with pytest.raises(ValueError, match="`method` must be one of"):
        linear_probe(train, labels, train, labels, method="svm")
    with pytest.raises(ValueError, match="regression probe"):
        linear_probe(train, labels + 0.25, train, labels)


def test_ridge_recovers_a_linear_target():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=6)
    train, test = rng.normal(size=(200, 6)), rng.normal(size=(50, 6))
    result = ridge_regression(train, train @ weights + 3.0, test, test @ weights + 3.0, alpha=1e-6)
    assert result["r2"] == pytest.approx(1.0, abs=1e-9)
    assert result["mae"] == pytest.approx(0.0, abs=1e-5)
    noisy = ridge_regression(
        train, rng.normal(size=200), test, rng.normal(size=50), alphas=[0.1, 10.0, 1000.0]
    )
    assert noisy["r2"] < 0.1  # nothing to learn
    assert noisy["alpha"] in (0.1, 10.0, 1000.0)
    with pytest.raises(ValueError, match="NaN"):
        ridge_regression(train, np.full(200, np.nan), test, test @ weights)
