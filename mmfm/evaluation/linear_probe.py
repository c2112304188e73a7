"""Linear probe: a linear classifier trained on frozen, standardised features.

Two back-ends with one return format. `method="sklearn"` (default) fits scikit-learn's
`LogisticRegression`, optionally choosing the inverse regularisation strength C from a grid by stratified
cross-validation on the training split only (the test split is never looked at until the final score,
as in CLIP's linear-probe protocol, Radford et al. 2021, which also tunes C on held-out training data).
`method="torch"` trains a `torch.nn.Linear` with AdamW and cross-entropy, for feature sets too large for
an exact solver.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._checks import check_class_labels, check_features, encode_labels
from .metrics import compute_metric

logger = logging.getLogger(__name__)

PROBE_METHODS = ("sklearn", "torch")


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    method: str = "sklearn",
    C: float = 1.0,
    Cs: Sequence[float] | None = None,
    cv: int = 5,
    max_iter: int = 5000,
    epochs: int = 100,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> dict:
    """Train a linear classifier on the training features and score it on the test features.

    Features are standardised with the training split's mean and standard deviation.

    Args:
        train_features: (N_train, D) array or tensor.
        train_labels: (N_train,) class labels (ints or strings); at least two classes.
        test_features: (N_test, D) array or tensor.
        test_labels: (N_test,) class labels; a label never seen in training counts as an error.
        method: "sklearn" (logistic regression, L-BFGS) or "torch" (linear layer + AdamW).
        C: sklearn only: inverse L2 regularisation strength, used when `Cs` is None.
        Cs: sklearn only: candidate values of C, chosen by `cv`-fold stratified cross-validation on the
            training split (accuracy); the probe is then refitted on the whole training split.
        cv: sklearn only: number of folds, capped by the smallest class count (at least 2 are needed).
        max_iter: sklearn only: solver iterations; non-convergence is logged as a warning.
        epochs, learning_rate, weight_decay, batch_size: torch only: AdamW training of the linear layer.
        seed: seeds the cross-validation folds and the torch initialisation and shuffling.
        device: torch only: where to train (default CPU).

    Returns:
        `{"accuracy": float, "macro_f1": float, "method": str}`, plus `"C"` (the C used) for sklearn.
        Both scores come from the shipped `evaluate` metrics; macro F1 averages over the training classes.
    """
    train = check_features(train_features, "train_features")
    test = check_features(test_features, "test_features", dim=train.shape[1])
    train_labels = check_class_labels(train_labels, train.shape[0], "train_labels")
    test_labels = check_class_labels(test_labels, test.shape[0], "test_labels")
    classes = np.unique(train_labels)
    if len(classes) < 2:
        raise ValueError(
            f"`train_labels` holds a single class ({classes[0]!r}): a linear probe needs at least two."
        )
    targets = encode_labels(train_labels, classes)
    if method == "sklearn":
        predictions, extra = _fit_logistic_regression(train, targets, test, C, Cs, cv, max_iter, seed)
    elif method == "torch":
        predictions = _fit_torch_linear(
            train, targets, test, epochs, learning_rate, weight_decay, batch_size, seed, device
        )
        extra = {}
    else:
        raise ValueError(f"`method` must be one of {PROBE_METHODS}, got {method!r}.")
    references = encode_labels(test_labels, classes)
    return {
        "accuracy": compute_metric("accuracy", predictions, references),
        "macro_f1": compute_metric(
            "f1", predictions, references, average="macro", labels=list(range(len(classes)))
        ),
        "method": method,
        **extra,
    }


def _fit_logistic_regression(
    train: np.ndarray,
    targets: np.ndarray,
    test: np.ndarray,
    C: float,
    Cs: Sequence[float] | None,
    cv: int,
    max_iter: int,
    seed: int,
) -> tuple[np.ndarray, dict]:
    """Standardise + logistic regression; C from `Cs` by cross-validation when given. Returns
    (N_test,) class indices and `{"C": float}`."""
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if Cs is None:
            model = pipeline.fit(train, targets)
            chosen = float(C)
        else:
            folds = _stratified_folds(targets, cv, seed)
            search = GridSearchCV(
                pipeline, {"logisticregression__C": list(Cs)}, cv=folds, scoring="accuracy", refit=True
            )
            model = search.fit(train, targets)
            chosen = float(search.best_params_["logisticregression__C"])
            logger.info(
                "Linear probe: C=%g chosen by %d-fold cross-validation on the training split.",
                chosen,
                folds.n_splits,
            )
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if unconverged:
        logger.warning(
            "Logistic regression did not converge in %d of its fits (max_iter=%d): raise `max_iter`.",
            unconverged,
            max_iter,
        )
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model.predict(test).astype(np.int64), {"C": chosen}


def _stratified_folds(targets: np.ndarray, cv: int, seed: int) -> StratifiedKFold:
    smallest = int(np.bincount(targets).min())
    n_splits = min(cv, smallest)
    if n_splits < 2:
        raise ValueError(
            f"Cross-validating C needs at least 2 training samples per class, but a class has {smallest}: "
            "pass a single `C` (Cs=None) or more training data."
        )
    if n_splits < cv:
        logger.warning(
            "Linear probe: %d folds instead of cv=%d (the smallest class has %d samples).",
            n_splits,
            cv,
            smallest,
        )
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def _fit_torch_linear(
    train: np.ndarray,
    targets: np.ndarray,
    test: np.ndarray,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    device: str | torch.device | None,
) -> np.ndarray:
    """Standardise, then train `nn.Linear(D, K)` with AdamW on mini-batches. Returns (N_test,) class indices."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"`epochs` and `batch_size` must be >= 1, got {epochs!r} and {batch_size!r}.")
    device = torch.device(device or "cpu")
    scaler = StandardScaler().fit(train)
    inputs = torch.as_tensor(scaler.transform(train), dtype=torch.float32, device=device)
    labels = torch.as_tensor(targets, dtype=torch.long, device=device)
    num_classes = int(targets.max()) + 1
    # A private RNG stream: the probe is reproducible and leaves the caller's global seed untouched.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(inputs.shape[1], num_classes).to(device)
        optimizer = torch.optim.AdamW(layer.parameters(), lr=learning_rate, weight_decay=weight_decay)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator).to(device)
            for start in range(0, len(inputs), batch_size):
                batch = order[start : start + batch_size]
                loss = torch.nn.functional.cross_entropy(layer(inputs[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    logger.debug("Torch linear probe: final training loss %.4f.", loss.item())
    with torch.no_grad():
        test_inputs = torch.as_tensor(scaler.transform(test), dtype=torch.float32, device=device)
        return layer(test_inputs).argmax(dim=1).cpu().numpy().astype(np.int64)


__all__ = ["PROBE_METHODS", "linear_probe"]
