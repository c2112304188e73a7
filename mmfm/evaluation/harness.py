"""One call from an encoder and two labelled splits to a JSON-ready report of frozen-feature probes.

    report = evaluate_encoder(model, processor, "vision", digits["train"], digits["test"],
                              output_path="runs/eval/digits.json", knn={"k": 10})
    report["knn"]["accuracy"], report["linear_probe"]["macro_f1"]

Features are extracted once per split, then each task runs on them: "knn" (`knn_accuracy`) and
"linear_probe" (`linear_probe`) for class labels, "ridge" (`ridge_regression`) for a numeric target.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from .features import extract_features
from .knn import knn_accuracy
from .linear_probe import linear_probe
from .regression import ridge_regression

logger = logging.getLogger(__name__)

CLASSIFICATION_TASKS = ("knn", "linear_probe")
REGRESSION_TASKS = ("ridge",)
TASKS = CLASSIFICATION_TASKS + REGRESSION_TASKS
FEATURE_OPTIONS = ("batch_size", "device", "progress", "text_column", "processor_kwargs")
KNN_DEFAULTS = {"k": 20, "temperature": 0.07, "weighting": "distance"}


def _run_knn(train, train_labels, test, test_labels, options: Mapping[str, Any]) -> dict:
    settings = {**KNN_DEFAULTS, **options}
    accuracy = knn_accuracy(train, train_labels, test, test_labels, **settings)
    return {"accuracy": accuracy, **{key: settings[key] for key in KNN_DEFAULTS}}


def _run_linear_probe(train, train_labels, test, test_labels, options: Mapping[str, Any]) -> dict:
    return linear_probe(train, train_labels, test, test_labels, **options)


def _run_ridge(train, train_labels, test, test_labels, options: Mapping[str, Any]) -> dict:
    return ridge_regression(train, train_labels, test, test_labels, **options)


_TASK_RUNNERS = {"knn": _run_knn, "linear_probe": _run_linear_probe, "ridge": _run_ridge}


def _split_options(tasks: Sequence[str], options: Mapping[str, Any]) -> tuple[dict, dict]:
    """Separate feature-extraction options from per-task option dicts, refusing anything else."""
    unknown = sorted(set(options) - set(FEATURE_OPTIONS) - set(TASKS))
    if unknown:
        raise ValueError(
            f"Unknown option(s) {unknown}: expected feature options {FEATURE_OPTIONS} or a dict of options "
            f"per task, keyed by task name {TASKS} (e.g. knn={{'k': 10}})."
        )
    feature_options = {key: options[key] for key in FEATURE_OPTIONS if key in options}
    task_options = {key: options[key] for key in TASKS if key in options}
    for task, value in task_options.items():
        if task not in tasks:
            raise ValueError(f"Options were given for task {task!r}, which is not in `tasks`={tuple(tasks)}.")
        if not isinstance(value, Mapping):
            raise TypeError(f"Options of task {task!r} must be a dict of keyword arguments, got {value!r}.")
    return feature_options, task_options


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    if isinstance(tasks, str):
        tasks = (tasks,)
    tasks = tuple(tasks)
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"`tasks` must be a non-empty selection of {TASKS}, got {tasks!r}.")
    return tasks


def _labels(dataset: Dataset, label_column: str, split: str) -> np.ndarray:
    if label_column not in dataset.column_names:
        raise ValueError(
            f"The {split} dataset has no label column {label_column!r}; its columns are "
            f"{dataset.column_names}. Pass `label_column=`."
        )
    labels = np.asarray(dataset[label_column][:])  # a datasets 5 `Column` sliced to a list
    if labels.ndim != 1:
        raise ValueError(f"Column {label_column!r} of the {split} dataset must hold one label per row.")
    return labels


def _json_ready(value: Any) -> Any:
    """Python scalars, lists and dicts only; non-finite floats become strings JSON accepts ("inf", "nan")."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, torch.device):
        return str(value)
    return value


def write_report(report: Mapping[str, Any], output_path: str | os.PathLike) -> Path:
    """Write `report` as indented JSON, creating parent folders; the file appears whole or not at all."""
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(_json_ready(report), indent=2) + "\n")
    partial.replace(path)
    logger.info("Evaluation report written to %s.", path)
    return path


def evaluate_encoder(
    model: torch.nn.Module,
    processor: Any,
    modality: str,
    train_dataset: Dataset,
    test_dataset: Dataset,
    label_column: str = "label",
    tasks: Sequence[str] = CLASSIFICATION_TASKS,
    output_path: str | os.PathLike | None = None,
    **options: Any,
) -> dict:
    """Extract frozen features of both splits once and run the evaluation tasks on them.

    Args:
        model: an mmfm encoder or an `MMFMModel` (see `extract_features`).
        processor: an `MMFMProcessor` with a processor for `modality`.
        modality: the modality of the datasets' inputs.
        train_dataset: rows the probes are fitted on (and the kNN memory bank).
        test_dataset: rows the probes are scored on.
        label_column: the column holding class labels (knn, linear_probe) or a numeric target (ridge).
        tasks: any of "knn", "linear_probe" (class labels) and "ridge" (numeric target).
        output_path: when given, the report is also written there as JSON (parent folders created).
        **options: feature-extraction options (`batch_size`, `device`, `progress`, `text_column`,
            `processor_kwargs`; see `extract_features`) and, keyed by task name, a dict of that task's
            keyword arguments: `knn={"k": 10, "temperature": 0.07, "weighting": "uniform"}`,
            `linear_probe={"Cs": [0.1, 1, 10], "method": "torch"}`, `ridge={"alphas": [0.1, 1, 10]}`.

    Returns:
        `{"modality", "label_column", "num_train", "num_test", "feature_dim", "model_type",
        <task>: {...} for each task, "seconds"}`: e.g. `"knn": {"accuracy", "k", "temperature",
        "weighting"}`, `"linear_probe": {"accuracy", "macro_f1", "method", "C"}`, `"ridge": {"r2", "mae",
        "alpha"}`; `seconds` is the wall time of the whole evaluation.
    """
    start = time.perf_counter()
    tasks = _check_tasks(tasks)
    feature_options, task_options = _split_options(tasks, options)
    train_labels = _labels(train_dataset, label_column, "train")
    test_labels = _labels(test_dataset, label_column, "test")
    train_features = extract_features(model, processor, train_dataset, modality, **feature_options)
    test_features = extract_features(model, processor, test_dataset, modality, **feature_options)
    report: dict[str, Any] = {
        "modality": modality,
        "label_column": label_column,
        "num_train": int(train_features.shape[0]),
        "num_test": int(test_features.shape[0]),
        "feature_dim": int(train_features.shape[1]),
        "model_type": getattr(getattr(model, "config", None), "model_type", type(model).__name__),
    }
    for task in tasks:
        task_start = time.perf_counter()
        report[task] = _TASK_RUNNERS[task](
            train_features, train_labels, test_features, test_labels, task_options.get(task, {})
        )
        logger.info(
            "%s on %s features: %s (%.1f s).", task, modality, report[task], time.perf_counter() - task_start
        )
    report["seconds"] = time.perf_counter() - start
    if output_path is not None:
        write_report(report, output_path)
    return report


__all__ = ["CLASSIFICATION_TASKS", "REGRESSION_TASKS", "TASKS", "evaluate_encoder", "write_report"]
