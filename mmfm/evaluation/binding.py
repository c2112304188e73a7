"""One call from a contrastively trained `MMFMModel` to a JSON-ready report of how well its modalities bind.

    shapes = load_demo_dataset("vision", "shapes")["test"].rename_column("caption", "text")
    digits, spoken = load_demo_dataset("vision", "digits")["test"], load_demo_dataset("audio", "spoken_digits")["test"]
    torch.manual_seed(0)
    report = evaluate_binding(
        model, processor,
        pairs={"shapes": shapes},                                   # text <-> vision, read from the columns
        zero_shot={"shapes": (shapes, "vision"), "spoken_digits": (spoken, "audio")},
        emergent={"digits": (spoken, "audio", digits, "vision")},   # never trained together: matched by label
        random_init_model=type(model)(model.config),
        output_path="runs/eval/binding.json",
    )
    report["retrieval"]["shapes"]["text_to_vision"]["recall@1"]   # {"model": .., "chance": .., "random_init": ..}

Every number is reported next to the chance level of the task and, when `random_init_model` is given, next to
the same architecture at random initialisation, which tells what training added beyond the inductive bias.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from datasets import ClassLabel, Dataset

from ..modalities import get_modality
from .embeddings import embed_rows, is_shared_space_model
from .harness import write_report
from .retrieval import DEFAULT_KS, check_ks, retrieval_metrics
from .zero_shot import default_templates, zero_shot_accuracy, zero_shot_classifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedSet:
    """Rows that each carry two modalities of one sample (an image and its caption): retrieval both ways.

    Attributes:
        dataset: the rows; each modality's columns as in `extract_features` (text `text_column`; vision
            `image`; audio `audio` (+ `sampling_rate`); graph `num_nodes`, `edge_index` (+ `node_features`);
            timeseries `past_values`).
        modalities: the two modalities to pair; default: the model's modalities whose columns the dataset
            has, which must be exactly two.
        text_column: the text column; default `evaluate_binding`'s `text_column`.
    """

    dataset: Dataset
    modalities: tuple[str, str] | None = None
    text_column: str | None = None


@dataclass(frozen=True)
class ZeroShotSet:
    """Labelled rows of one modality, classified against text embeddings of the class names.

    Attributes:
        dataset: the rows (columns of `modality`, and `label_column`).
        modality: the modality of the rows.
        label_column: class ids (0..C-1, e.g. a `ClassLabel`) or class names (strings from `class_names`).
        class_names: the C class names, in class-id order; default the `ClassLabel` names of `label_column`.
        templates: prompt templates holding "{}"; default `DEFAULT_TEMPLATES[modality]`.
    """

    dataset: Dataset
    modality: str
    label_column: str = "label"
    class_names: Sequence[str] | None = None
    templates: Sequence[str] | None = None


@dataclass(frozen=True)
class EmergentSet:
    """Two unpaired labelled sets of two modalities (spoken digits, digit images): retrieval by shared label.

    Labels are compared by value (class ids), so both `ClassLabel`s must list the classes in the same order
    ("zero".."nine" and "0".."9" both give ids 0..9).
    """

    a: Dataset
    a_modality: str
    b: Dataset
    b_modality: str
    label_column: str = "label"


def _as_task(task_class: type, value: Any, where: str) -> Any:
    """A task from its dataclass, a dict of its fields, a tuple of them in order, or (pairs) a bare Dataset."""
    if isinstance(value, task_class):
        return value
    names = [f.name for f in fields(task_class)]
    try:
        if isinstance(value, Dataset) and task_class is PairedSet:
            return PairedSet(value)
        if isinstance(value, Mapping):
            return task_class(**value)
        if isinstance(value, tuple | list):
            return task_class(*value)
    except TypeError as err:
        raise TypeError(f"{where}: {err}; the fields are {names}.") from err
    raise TypeError(
        f"{where} must be a {task_class.__name__}, a dict or a tuple of its fields {names}, got "
        f"{type(value).__name__}."
    )


def _check_tasks(tasks: Mapping[str, Any] | None, task_class: type, argument: str) -> dict[str, Any]:
    if tasks is None:
        return {}
    if not isinstance(tasks, Mapping):
        raise TypeError(f"`{argument}` must be a dict of named tasks, got {type(tasks).__name__}.")
    checked = {}
    for name, value in tasks.items():
        task = _as_task(task_class, value, f"`{argument}[{name!r}]`")
        for field in fields(task_class):
            item = getattr(task, field.name)
            if field.type == "Dataset" and not isinstance(item, Dataset):
                raise TypeError(
                    f"`{argument}[{name!r}].{field.name}` must be a datasets.Dataset, got {type(item).__name__}."
                )
        checked[str(name)] = task
    return checked


def _check_modality(model: torch.nn.Module, modality: str, where: str) -> str:
    get_modality(modality)
    if modality not in model.encoders:
        article = "an" if modality[0] in "aeiou" else "a"
        raise ValueError(
            f"{where} needs {article} {modality} encoder, but the model encodes {tuple(model.encoders)}."
        )
    return modality


def _pair_modalities(
    model: torch.nn.Module, task: PairedSet, text_column: str, where: str
) -> tuple[str, str]:
    if task.modalities is not None:
        if isinstance(task.modalities, str) or len(task.modalities) != 2 or len(set(task.modalities)) != 2:
            raise ValueError(f"{where}.modalities must be two different modalities, got {task.modalities!r}.")
        return tuple(_check_modality(model, m, where) for m in task.modalities)
    columns = set(task.dataset.column_names)
    found = [m for m in model.encoders if set(get_modality(m).columns(text_column)[0]) <= columns]
    if len(found) != 2:
        needs = {m: get_modality(m).columns(text_column)[0] for m in model.encoders}
        raise ValueError(
            f"{where}: the dataset's columns {task.dataset.column_names} hold the inputs of {found or 'no'} "
            f"modalit{'y' if len(found) == 1 else 'ies'} of the model, expected exactly two (columns per "
            f"modality: {needs}). Pass `modalities=(a, b)`, or `text_column=` for a caption column."
        )
    return found[0], found[1]


def _subsample(dataset: Dataset, max_samples: int | None, seed: int) -> Dataset:
    """At most `max_samples` rows, drawn without replacement with `seed`, in their original order."""
    if max_samples is None or len(dataset) <= max_samples:
        return dataset
    rows = np.random.default_rng(seed).choice(len(dataset), size=max_samples, replace=False)
    return dataset.select(np.sort(rows).tolist())


def _labels(dataset: Dataset, label_column: str, where: str) -> np.ndarray:
    if label_column not in dataset.column_names:
        raise ValueError(
            f"{where}: the dataset has no label column {label_column!r}; its columns are {dataset.column_names}."
        )
    labels = np.asarray(dataset[label_column][:])
    if labels.ndim != 1:
        raise ValueError(f"{where}: column {label_column!r} must hold one label per row.")
    return labels


def _class_label(dataset: Dataset, label_column: str) -> ClassLabel | None:
    feature = dataset.features.get(label_column)
    return feature if isinstance(feature, ClassLabel) else None


def _versus(model_value: float, chance: float, random_value: float | None) -> dict[str, float]:
    entry = {"model": model_value, "chance": chance}
    if random_value is not None:
        entry["random_init"] = random_value
    return entry


def _direction_report(metrics: dict, random_metrics: dict | None, ks: tuple[int, ...]) -> dict[str, Any]:
    report: dict[str, Any] = {"num_queries": metrics["num_queries"], "num_gallery": metrics["num_gallery"]}
    if "num_queries_without_match" in metrics:
        report["num_queries_without_match"] = metrics["num_queries_without_match"]
    for k in ks:
        random_value = None if random_metrics is None else random_metrics[f"recall@{k}"]
        report[f"recall@{k}"] = _versus(metrics[f"recall@{k}"], metrics[f"chance@{k}"], random_value)
    return report


def evaluate_binding(
    model: torch.nn.Module,
    processor: Any,
    pairs: Mapping[str, PairedSet | Dataset | tuple | Mapping] | None = None,
    zero_shot: Mapping[str, ZeroShotSet | tuple | Mapping] | None = None,
    emergent: Mapping[str, EmergentSet | tuple | Mapping] | None = None,
    random_init_model: torch.nn.Module | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 64,
    max_samples: int | None = None,
    seed: int = 0,
    text_column: str = "text",
    processor_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = False,
    output_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Retrieval between paired modalities, zero-shot classification and emergent retrieval, in one report.

    Args:
        model: an `MMFMModel` (shared embedding space) with the encoders the tasks need.
        processor: its `MMFMProcessor` (a tokenizer for zero-shot and text pairs).
        pairs: name -> paired rows, retrieval both ways between their two modalities (`PairedSet`; a bare
            `Dataset` infers the two modalities from its columns).
        zero_shot: name -> labelled rows classified against class-name prompts (`ZeroShotSet`, or a tuple
            `(dataset, modality[, label_column[, class_names[, templates]]])`, or a dict of those fields).
        emergent: name -> two unpaired labelled sets, retrieval both ways where a hit shares the label
            (`EmergentSet`, or `(a, a_modality, b, b_modality[, label_column])`, or a dict).
        random_init_model: the same architecture at random initialisation (the caller seeds it, e.g.
            `torch.manual_seed(0); type(model)(model.config)`); evaluated on the same rows with `processor`.
        ks: the K of Recall@K.
        batch_size: rows encoded at once.
        max_samples: at most this many rows per dataset (drawn with `seed`; retrieval gets harder with more
            rows, so compare reports at equal sizes).
        seed: seed of that subsampling.
        text_column: the text column of paired sets (a `PairedSet` may name its own).
        processor_kwargs: modality -> that processor's options, e.g. `{"text": {"truncation": True}}`.
        progress: show progress bars while embedding.
        output_path: when given, the report is also written there as JSON (see `write_report`).

    Returns:
        ```
        {"model_type", "projection_dim", "ks", "max_samples", "seed", "random_init": bool,
         "retrieval": {name: {"modalities": [a, b], "num_pairs",
                              "<a>_to_<b>": {"num_queries", "num_gallery", "recall@K": CELL, ...},
                              "<b>_to_<a>": {...}}},
         "zero_shot": {name: {"modality", "label_column", "num_examples", "num_classes", "class_names",
                              "templates", "accuracy": CELL, "top5_accuracy": CELL (C > 5)}},
         "emergent": {name: {"modalities": [a, b], "label_column", "num_a", "num_b",
                             "<a>_to_<b>": {"num_queries", "num_gallery", "num_queries_without_match",
                                            "recall@K": CELL, ...}, "<b>_to_<a>": {...}}},
         "seconds"}
        ```
        where CELL is `{"model": float, "chance": float, "random_init": float (with random_init_model)}`.
        Paired chance is min(K, N) / N; emergent chance accounts for how many gallery items share each
        query's label (`chance_recall`); zero-shot chance is 1 / C (top-5: 5 / C).

    Raises:
        TypeError: a model without a shared space, or a task of the wrong type.
        ValueError: no task, a modality the model does not encode, a missing column, labels without class
            names, or the errors of the metrics.
    """
    start = time.perf_counter()
    models = (
        {"model": model} if random_init_model is None else {"model": model, "random_init": random_init_model}
    )
    for role, candidate in models.items():
        if not is_shared_space_model(candidate):
            raise TypeError(
                f"`{role}` must be an MMFMModel (a shared embedding space), got {type(candidate).__name__}; "
                "single encoders are evaluated with `evaluate_encoder`."
            )
    ks = check_ks(ks)
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"`max_samples` must be a positive integer or None, got {max_samples!r}.")
    pairs = _check_tasks(pairs, PairedSet, "pairs")
    zero_shot = _check_tasks(zero_shot, ZeroShotSet, "zero_shot")
    emergent = _check_tasks(emergent, EmergentSet, "emergent")
    if not (pairs or zero_shot or emergent):
        raise ValueError("Give at least one task: `pairs`, `zero_shot` or `emergent`.")
    processor_kwargs = dict(processor_kwargs or {})
    for key in processor_kwargs:
        get_modality(key)

    def embed(dataset: Dataset, modality: str, column: str = text_column) -> dict[str, np.ndarray]:
        """The embeddings of the rows by each model (`model`, and `random_init` when given)."""
        return {
            role: embed_rows(
                candidate, processor, dataset, modality, batch_size=batch_size, text_column=column,
                processor_kwargs=processor_kwargs.get(modality), progress=progress,
            )
            for role, candidate in models.items()
        }  # fmt: skip

    report: dict[str, Any] = {
        "model_type": getattr(model.config, "model_type", type(model).__name__),
        "projection_dim": getattr(model.config, "projection_dim", None),
        "ks": list(ks),
        "max_samples": max_samples,
        "seed": seed,
        "random_init": random_init_model is not None,
    }

    report["retrieval"] = {}
    for name, task in pairs.items():
        where = f"`pairs[{name!r}]`"
        column = task.text_column or text_column
        for candidate in models.values():
            a, b = _pair_modalities(candidate, task, column, where)
        dataset = _subsample(task.dataset, max_samples, seed)
        embeddings = {m: embed(dataset, m, column) for m in (a, b)}
        entry: dict[str, Any] = {"modalities": [a, b], "num_pairs": len(dataset)}
        for query, gallery in ((a, b), (b, a)):
            metrics = {
                role: retrieval_metrics(embeddings[query][role], embeddings[gallery][role], ks)
                for role in models
            }
            entry[f"{query}_to_{gallery}"] = _direction_report(
                metrics["model"], metrics.get("random_init"), ks
            )
        report["retrieval"][name] = entry
        logger.info("Retrieval %s (%s <-> %s, %d pairs): %s", name, a, b, len(dataset), entry)

    report["zero_shot"] = {}
    for name, task in zero_shot.items():
        where = f"`zero_shot[{name!r}]`"
        for candidate in models.values():
            _check_modality(candidate, task.modality, where)
            _check_modality(candidate, "text", where + " (class names are embedded as text)")
        dataset = _subsample(task.dataset, max_samples, seed)
        labels = _labels(dataset, task.label_column, where)
        class_names = task.class_names
        if class_names is None:
            feature = _class_label(task.dataset, task.label_column)
            if feature is None:
                raise ValueError(
                    f"{where}: column {task.label_column!r} is not a ClassLabel, so the class names are unknown; "
                    "pass `class_names`."
                )
            class_names = feature.names
        class_names = list(class_names)
        # Labels that are strings name the classes; numbers are class ids 0..C-1.
        class_ids = class_names if labels.dtype.kind in "US" else None
        templates = list(default_templates(task.modality) if task.templates is None else task.templates)
        embeddings = embed(dataset, task.modality)
        results = {}
        for role, candidate in models.items():
            classes = zero_shot_classifier(
                candidate, processor, class_names, templates, task.modality, batch_size,
                processor_kwargs.get("text"),
            )  # fmt: skip
            results[role] = zero_shot_accuracy(embeddings[role], labels, classes, class_ids)
        scores, random_scores = results["model"], results.get("random_init")
        entry = {
            "modality": task.modality,
            "label_column": task.label_column,
            "num_examples": scores["num_examples"],
            "num_classes": scores["num_classes"],
            "class_names": class_names,
            "templates": templates,
        }
        for metric, chance in (("accuracy", "chance"), ("top5_accuracy", "top5_chance")):
            if metric in scores:
                random_value = None if random_scores is None else random_scores[metric]
                entry[metric] = _versus(scores[metric], scores[chance], random_value)
        report["zero_shot"][name] = entry
        logger.info("Zero-shot %s (%s, %d classes): %s", name, task.modality, scores["num_classes"], entry)

    report["emergent"] = {}
    for name, task in emergent.items():
        where = f"`emergent[{name!r}]`"
        if task.a_modality == task.b_modality:
            raise ValueError(
                f"{where}: the two sets must be of different modalities, both are {task.a_modality!r}."
            )
        for candidate in models.values():
            _check_modality(candidate, task.a_modality, where)
            _check_modality(candidate, task.b_modality, where)
        a_rows = _subsample(task.a, max_samples, seed)
        b_rows = _subsample(task.b, max_samples, seed)
        a_labels = _labels(a_rows, task.label_column, where + ".a")
        b_labels = _labels(b_rows, task.label_column, where + ".b")
        a_feature, b_feature = (
            _class_label(task.a, task.label_column),
            _class_label(task.b, task.label_column),
        )
        if a_feature is not None and b_feature is not None and a_feature.num_classes != b_feature.num_classes:
            logger.warning(
                "%s: the two ClassLabels have %d and %d classes; labels are matched by id.",
                where, a_feature.num_classes, b_feature.num_classes,
            )  # fmt: skip
        a_embeddings, b_embeddings = embed(a_rows, task.a_modality), embed(b_rows, task.b_modality)
        entry = {
            "modalities": [task.a_modality, task.b_modality],
            "label_column": task.label_column,
            "num_a": len(a_rows),
            "num_b": len(b_rows),
        }
        for (query, query_labels, query_modality), (gallery, gallery_labels, gallery_modality) in (
            ((a_embeddings, a_labels, task.a_modality), (b_embeddings, b_labels, task.b_modality)),
            ((b_embeddings, b_labels, task.b_modality), (a_embeddings, a_labels, task.a_modality)),
        ):
            metrics = {
                role: retrieval_metrics(query[role], gallery[role], ks, query_labels, gallery_labels)
                for role in models
            }
            entry[f"{query_modality}_to_{gallery_modality}"] = _direction_report(
                metrics["model"], metrics.get("random_init"), ks
            )
        report["emergent"][name] = entry
        logger.info("Emergent retrieval %s (%s <-> %s): %s", name, task.a_modality, task.b_modality, entry)

    report["seconds"] = time.perf_counter() - start
    if output_path is not None:
        write_report(report, output_path)
    return report


__all__ = ["EmergentSet", "PairedSet", "ZeroShotSet", "evaluate_binding"]
