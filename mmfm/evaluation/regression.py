"""Ridge regression probe: a linear model from frozen, standardised features to a continuous target
(e.g. a molecule's topological polar surface area, `tpsa`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._checks import check_features, check_labels
from .metrics import compute_metric

logger = logging.getLogger(__name__)


def _check_targets(targets, num_rows: int, name: str) -> np.ndarray:
    array = check_labels(targets, num_rows, name)
    if array.dtype.kind not in "iufb":
        raise ValueError(f"`{name}` must hold numbers for regression, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(
            f"`{name}` holds {int((~np.isfinite(array)).sum())} NaN or infinite value(s): drop those rows first."
        )
    return array


def ridge_regression(
    train_features,
    train_targets,
    test_features,
    test_targets,
    alpha: float = 1.0,
    alphas: Sequence[float] | None = None,
    cv: int = 5,
    seed: int = 0,
) -> dict:
    """Fit ridge regression on standardised training features and score it on the test split.

    Args:
        train_features: (N_train, D) array or tensor.
        train_targets: (N_train,) numbers.
        test_features: (N_test, D) array or tensor.
        test_targets: (N_test,) numbers.
        alpha: L2 penalty, used when `alphas` is None.
        alphas: candidate penalties, chosen by `cv`-fold cross-validation (mean squared error) on the
            training split only; the model is then refitted on the whole training split.
        cv: number of folds, capped by the number of training samples.
        seed: seeds the fold shuffling.

    Returns:
        `{"r2": float, "mae": float, "alpha": float}`: test R^2 and mean absolute error (in the target's
        units), from the shipped `evaluate` metrics, and the penalty used.
    """
    train = check_features(train_features, "train_features")
    test = check_features(test_features, "test_features", dim=train.shape[1])
    train_targets = _check_targets(train_targets, train.shape[0], "train_targets")
    test_targets = _check_targets(test_targets, test.shape[0], "test_targets")
    pipeline = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    if alphas is None:
        model = pipeline.fit(train, train_targets)
        chosen = float(alpha)
    else:
        n_splits = min(cv, len(train))
        if n_splits < 2:
            raise ValueError(
                f"Cross-validating alpha needs at least 2 training samples, got {len(train)}: pass a single "
                "`alpha` (alphas=None) or more training data."
            )
        folds = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
        search = GridSearchCV(
            pipeline, {"ridge__alpha": list(alphas)}, cv=folds, scoring="neg_mean_squared_error", refit=True
        )
        model = search.fit(train, train_targets)
        chosen = float(search.best_params_["ridge__alpha"])
        logger.info(
            "Ridge probe: alpha=%g chosen by %d-fold cross-validation on the training split.",
            chosen,
            n_splits,
        )
    predictions = model.predict(test)
    return {
        "r2": compute_metric("r2", predictions, test_targets),
        "mae": compute_metric("mae", predictions, test_targets),
        "alpha": chosen,
    }


__all__ = ["ridge_regression"]
