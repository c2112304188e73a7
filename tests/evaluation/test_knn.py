"""Weighted and uniform kNN on synthetic features with known answers."""

import math

import numpy as np
import pytest
import torch

from mmfm.evaluation import knn_accuracy, knn_class_scores, knn_predict

# Four unit vectors on the circle and their classes (features are L2-normalised anyway).
TRAIN = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
TRAIN_LABELS = np.array([0, 1, 1, 0])
TEST = np.array([[1.0, 0.0], [-0.6, 0.8]])
TEST_LABELS = np.array([0, 1])


def _clusters(n_per_class: int, seed: int, spread: float = 0.3):
    rng = np.random.default_rng(seed)
    centres = np.eye(4, 16) * 5.0  # four orthogonal directions
    labels = np.repeat(np.arange(4), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), 16)), labels


def test_hand_computed_weighted_votes():
    # Test point 0 = (1, 0): cosines with the training points are 1, 0.6, 0, -1; the top 3 are
    # A (class 0, s=1), B (class 1, s=0.6), C (class 1, s=0).
    # Test point 1 = (-0.6, 0.8): cosines -0.6, 0.28, 0.8, 0.6; top 3 are C (1, 0.8), D (0, 0.6), B (1, 0.28).
    t = 0.1
    expected = np.array(
        [
            [math.exp(1.0 / t), math.exp(0.6 / t) + math.exp(0.0 / t)],
            [math.exp(0.6 / t), math.exp(0.8 / t) + math.exp(0.28 / t)],
        ]
    )
    scores, classes = knn_class_scores(TRAIN, TRAIN_LABELS, TEST, k=3, temperature=t)
    np.testing.assert_array_equal(classes, [0, 1])
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # 22026 vs 404 -> class 0; 403 vs 2997 -> class 1: both right.
    np.testing.assert_array_equal(knn_predict(TRAIN, TRAIN_LABELS, TEST, k=3, temperature=t), [0, 1])
    assert knn_accuracy(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, k=3, temperature=t) == 1.0


def test_uniform_majority_differs_from_weighted_vote():
    # Uniform: point 0 gets 1 vote for class 0 and 2 for class 1 -> wrong; point 1 gets 2 for class 1 -> right.
    scores, _ = knn_class_scores(TRAIN, TRAIN_LABELS, TEST, k=3, weighting="uniform")
    np.testing.assert_array_equal(scores, [[1, 2], [1, 2]])
    assert knn_accuracy(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, k=3, weighting="uniform") == 0.5
    # With k=1 both weightings reduce to the nearest neighbour.
    assert knn_accuracy(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, k=1, weighting="uniform") == 1.0


def test_string_labels_tensors_and_chunking_agree():
    train, labels = _clusters(20, seed=1)
    test, test_labels = _clusters(10, seed=2)
    names = np.array(["ant", "bee", "cat", "dog"])
    expected = knn_predict(train, labels, test, k=5)
    chunked = knn_predict(torch.from_numpy(train), names[labels], torch.from_numpy(test), k=5, chunk_size=7)
    np.testing.assert_array_equal(chunked, names[expected])
    assert knn_accuracy(train, names[labels], test, names[test_labels], k=5) == 1.0


def test_separated_clusters_are_perfect():
    train, labels = _clusters(50, seed=0)
    test, test_labels = _clusters(25, seed=1)
    assert knn_accuracy(train, labels, test, test_labels, k=20) == 1.0
    assert knn_accuracy(train, labels, test, test_labels, k=20, weighting="uniform") == 1.0


def test_shuffled_labels_give_chance():
    train, labels = _clusters(100, seed=0, spread=1.0)
    test, test_labels = _clusters(100, seed=1, spread=1.0)
    shuffled = np.random.default_rng(3).permutation(labels)
    accuracy = knn_accuracy(train, shuffled, test, test_labels, k=20)
    assert 0.15 < accuracy < 0.4  # chance is 0.25


def test_unseen_test_label_counts_as_error():
    assert knn_accuracy(TRAIN, TRAIN_LABELS, TEST, [0, 7], k=3, temperature=0.1) == 0.5


def test_errors_are_named():
    with pytest.raises(ValueError, match="larger than the 4 training samples"):
        knn_accuracy(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, k=5)
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        knn_predict(TRAIN, TRAIN_LABELS, TEST, k=0)
    with pytest.raises(ValueError, match="weighting"):
        knn_predict(TRAIN, TRAIN_LABELS, TEST, k=1, weighting="cosine")
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(TRAIN, TRAIN_LABELS, TEST, k=1, temperature=0)
    with pytest.raises(ValueError, match="3 dimensions but the training features have 2"):
        knn_predict(TRAIN, TRAIN_LABELS, np.ones((2, 3)), k=1)
    with pytest.raises(ValueError, match="one label per feature row"):
        knn_predict(TRAIN, TRAIN_LABELS[:3], TEST, k=1)
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(TRAIN, TRAIN_LABELS, np.array([[np.nan, 1.0]]), k=1)
    with pytest.raises(ValueError, match="non-integer"):
        knn_predict(TRAIN, TRAIN_LABELS + 0.5, TEST, k=1)
