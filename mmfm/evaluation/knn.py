"""k-nearest-neighbour classification of frozen features, the standard probe of self-supervised encoders.

The weighted vote follows Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
Discrimination") as used by DINO (Caron et al. 2021): features are L2-normalised, the k training
samples of highest cosine similarity s_i vote for their class with weight exp(s_i / T), and the class of
largest total wins. `weighting="uniform"` gives the plain k-majority vote.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ._checks import check_class_labels, check_features, encode_labels
from .metrics import compute_metric

logger = logging.getLogger(__name__)

WEIGHTINGS = ("distance", "uniform")


def knn_class_scores(
    train_features,
    train_labels,
    test_features,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "distance",
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The summed neighbour votes each class gets, for every test row.

    Args:
        train_features: (N_train, D) array or tensor.
        train_labels: (N_train,) class labels (any hashable numpy dtype: ints or strings).
        test_features: (N_test, D) array or tensor.
        k: number of neighbours, 1 <= k <= N_train.
        temperature: T of the weight exp(cosine / T) (0.07 as in DINO); ignored for "uniform".
        weighting: "distance" (exp(cosine / T) weights, Wu et al. 2018) or "uniform" (one vote each).
        chunk_size: test rows compared at once; memory is O(chunk_size * N_train).

    Returns:
        `(scores, classes)`: scores (N_test, K) float64, the summed vote of each class; classes (K,) the
        sorted distinct training labels the columns stand for.
    """
    train = check_features(train_features, "train_features")
    test = check_features(test_features, "test_features", dim=train.shape[1])
    labels = check_class_labels(train_labels, train.shape[0], "train_labels")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"`weighting` must be one of {WEIGHTINGS}, got {weighting!r}.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    if k > train.shape[0]:
        raise ValueError(
            f"`k`={k} is larger than the {train.shape[0]} training samples: use k <= {train.shape[0]} or more "
            "training data."
        )
    if weighting == "distance" and not temperature > 0:
        raise ValueError(f"`temperature` must be > 0, got {temperature!r}.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size!r}.")

    classes, train_index = np.unique(labels, return_inverse=True)
    train_index = torch.as_tensor(train_index.reshape(-1), dtype=torch.long)
    train = torch.nn.functional.normalize(torch.from_numpy(train), dim=1)
    test = torch.nn.functional.normalize(torch.from_numpy(test), dim=1)
    scores = torch.zeros(test.shape[0], len(classes), dtype=torch.float64)
    for start in range(0, test.shape[0], chunk_size):
        similarity = test[start : start + chunk_size] @ train.T  # (chunk, N_train)
        top_similarity, top_index = similarity.topk(k, dim=1)  # (chunk, k)
        if weighting == "distance":
            weights = (top_similarity.double() / temperature).exp()
        else:
            weights = torch.ones_like(top_similarity, dtype=torch.float64)
        scores[start : start + chunk_size].scatter_add_(1, train_index[top_index], weights)
    return scores.numpy(), classes


def knn_predict(
    train_features,
    train_labels,
    test_features,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "distance",
    chunk_size: int = 1024,
) -> np.ndarray:
    """Predicted label of each test row: the class with the largest vote (ties go to the smallest class).

    Args: as `knn_class_scores`.

    Returns:
        (N_test,) array of training labels.
    """
    scores, classes = knn_class_scores(
        train_features, train_labels, test_features, k, temperature, weighting, chunk_size
    )
    return classes[scores.argmax(axis=1)]


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "distance",
    chunk_size: int = 1024,
) -> float:
    """Accuracy of the k-nearest-neighbour classifier on the test rows, computed with `evaluate`.

    Args:
        train_features: (N_train, D) array or tensor.
        train_labels: (N_train,) class labels.
        test_features: (N_test, D) array or tensor.
        test_labels: (N_test,) class labels; a label never seen in training counts as an error.
        k, temperature, weighting, chunk_size: see `knn_class_scores`.

    Returns:
        The fraction of test rows whose predicted label equals the true one, in [0, 1].
    """
    predictions = knn_predict(
        train_features, train_labels, test_features, k, temperature, weighting, chunk_size
    )
    test_labels = check_class_labels(test_labels, predictions.shape[0], "test_labels")
    classes = np.unique(check_class_labels(train_labels, len(train_labels), "train_labels"))
    return compute_metric(
        "accuracy", encode_labels(predictions, classes), encode_labels(test_labels, classes)
    )


__all__ = ["WEIGHTINGS", "knn_accuracy", "knn_class_scores", "knn_predict"]
