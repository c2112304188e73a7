"""Labelled data of a fine-tuning run: training, validation and test rows with their labels checked against
the head, and the collator that turns rows into encoder inputs plus `labels`.

The validation rows are carved from the training split (seeded, stratified by class), so the test split
is only read once, for the best checkpoint. `label_fraction` keeps a seeded, stratified share of the
training rows, for label-efficiency curves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from datasets import Dataset

from ..data import RowCollator, keep_values, load_labelled_splits
from ..data.sources import require_columns, undecoded
from ..modalities import ModalitySpec
from ..objectives import get_objective
from .finetune_config import FinetuneConfig

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # transformers' "no loss here" label (token classification padding)


@dataclass
class LabelledData:
    """The rows of a fine-tuning run and what their labels say about the head.

    Attributes:
        train, validation, test: rows with the modality's columns and `label_column`.
        num_labels: classes (1 for one regression target).
        id2label: class names by id (`ClassLabel` names, else the ids as text).
        problem_type: transformers' `problem_type` of the head.
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    num_labels: int
    id2label: dict[int, str]
    problem_type: str


def load_labelled_data(config: FinetuneConfig, spec: ModalitySpec) -> LabelledData:
    """Train/validation/test rows of `config.data` for a `spec` encoder, with labels checked against
    `config.finetune`.

    Raises:
        ValueError: the label column is missing (the columns present named), the modality's columns are
            missing, `finetune.num_labels` contradicts the labels, a regression label is not numeric, or a
            split is too small.
    """
    data = config.data
    train, test = load_labelled_splits(
        data.source, spec, "data", data.label_column, data.subset, seed=config.seed
    )
    for name, rows in (("train", train), ("test", test)):
        if data.label_column not in rows.column_names:
            raise ValueError(
                f"`data.label_column` = {data.label_column!r} is not a column of the {name} split of "
                f"{_describe(data)}; its columns are {rows.column_names}."
            )
    for column, values in data.include.items():
        train, test = (keep_values(rows, column, values, "data") for rows in (train, test))
    train, test = (_select(rows, spec, config, name) for name, rows in (("train", train), ("test", test)))
    feature = train.features[data.label_column]
    num_labels, id2label, problem_type = _label_space(config, train, test, feature)
    stratify = data.label_column if isinstance(feature, datasets.ClassLabel) else None
    halves = train.train_test_split(
        test_size=data.validation_fraction, seed=config.seed, stratify_by_column=stratify
    )
    train, validation = halves["train"], halves["test"]
    if data.label_fraction < 1:
        kept = train.train_test_split(
            train_size=data.label_fraction, seed=config.seed, stratify_by_column=stratify
        )
        train = kept["train"]
        logger.info(
            "data.label_fraction = %s: training on %d labelled rows.", data.label_fraction, len(train)
        )
    if len(validation) == 0 or len(test) == 0:
        raise ValueError(
            f"{_describe(data)} leaves no validation or test rows; raise `data.validation_fraction`."
        )
    return LabelledData(train, validation, test, num_labels, id2label, problem_type)


def _describe(data) -> str:
    return f"demo subset {data.subset!r}" if data.source == "demo" else f"`data.source` = {data.source!r}"


def _select(rows: Dataset, spec: ModalitySpec, config: FinetuneConfig, split: str) -> Dataset:
    """The modality's columns and the label column, image/audio cells left undecoded (a bad file is a bad row)."""
    data = config.data
    rows = undecoded(rows)
    first = rows[0] if len(rows) else None
    columns = require_columns(rows, spec, data.text_column, f"{_describe(data)} ({split})", "data", first)
    return rows.select_columns(columns + [data.label_column])


def _label_space(
    config: FinetuneConfig, train: Dataset, test: Dataset, feature
) -> tuple[int, dict[int, str], str]:
    """(num_labels, id2label, problem_type) the labels call for, checked against `finetune`."""
    data, tune = config.data, config.finetune
    column = data.label_column
    if tune.is_regression:
        if not (isinstance(feature, datasets.Value) and feature.dtype.startswith(("float", "int", "uint"))):
            raise ValueError(
                f"`finetune.head` = regression needs numbers in `data.label_column` = {column!r}, which holds "
                f"{feature}. Choose a numeric column, or `finetune.head=classification`."
            )
        num_labels = tune.num_labels or 1
        if num_labels != 1:
            raise ValueError(
                f"`finetune.num_labels` = {num_labels}: a regression on one column has 1 output."
            )
        return 1, {0: column}, "regression"
    if tune.head == "token_classification":
        if not isinstance(feature, (datasets.Sequence, datasets.List)):
            raise ValueError(
                f"`finetune.head` = token_classification needs one class id per token in `data.label_column` = "
                f"{column!r}, which holds {feature}."
            )
        feature = feature.feature
        labels = [label for row in [*train[column], *test[column]] for label in row if label != IGNORE_INDEX]
    else:
        if isinstance(feature, datasets.Value) and not feature.dtype.startswith(("int", "uint")):
            raise ValueError(
                f"`finetune.head` = classification needs class ids in `data.label_column` = {column!r}, which holds "
                f"{feature}. Use `finetune.head=regression` for numbers, or another column."
            )
        labels = list(train[column]) + list(test[column])
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    largest = int(np.max(labels)) if labels else -1
    found = len(names) if names else largest + 1
    if tune.num_labels is not None and (
        tune.num_labels < largest + 1 or (names and tune.num_labels != len(names))
    ):
        raise ValueError(
            f"`finetune.num_labels` = {tune.num_labels} contradicts `data.label_column` = {column!r}, which has "
            f"{found} classes{f' ({names})' if names else f' (ids up to {largest})'}. Leave num_labels unset to "
            "read it from the data."
        )
    num_labels = tune.num_labels or found
    if num_labels < 2 and tune.head == "classification":
        raise ValueError(
            f"`data.label_column` = {column!r} holds one class only: there is nothing to classify."
        )
    id2label = {i: (names[i] if names else str(i)) for i in range(num_labels)}
    return num_labels, id2label, tune.problem_type or "single_label_classification"


class LabelledRowCollator(RowCollator):
    """A `RowCollator` that also returns `labels`: (B,) class ids, (B,) float targets for regression, or (B, L)
    token class ids padded with -100; text is tokenized and padded here (no objective corrupts it)."""

    def __init__(self, spec: ModalitySpec, processor: Any, config: FinetuneConfig, problem_type: str):
        data = config.data
        # The processor options pretraining uses for the modality (e.g. time series and audio cut to the
        # encoder's length), from its default objective.
        options = dict(get_objective(spec.default_objective).processor_kwargs)
        super().__init__(
            spec, processor, options, "data", data.text_column, data.max_length, data.on_bad_sample
        )
        self.label_column, self.problem_type = data.label_column, problem_type
        self.token_labels = config.finetune.head == "token_classification"

    def _screen(self, position: int, index: int | None, row: dict) -> bool | None:
        return None

    def _refuse(self, refused: list, cause: BaseException | None) -> None:
        if self.on_bad_sample == "raise":
            first = str(refused[0]) if refused else repr(cause)
            raise ValueError(
                f"A batch of `data` could not be processed ({first}). Set `data.on_bad_sample=skip` to drop and "
                "count bad rows instead."
            ) from cause

    def _process(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        labels = [row[self.label_column] for row in rows]
        if any(label is None for label in labels):
            raise ValueError(f"missing label in column {self.label_column!r}")
        inputs = [{k: v for k, v in row.items() if k != self.label_column} for row in rows]
        if self.spec.tokenized:
            texts = [row[self.text_column] for row in inputs]
            if any(not isinstance(t, str) or not t.strip() for t in texts):
                raise ValueError(f"empty or non-text value in column {self.text_column!r}")
            tokenizer = self.processor[self.spec.name]
            batch = dict(tokenizer(texts, truncation=True, max_length=self.max_length, padding=True,
                                   return_tensors="pt", verbose=False))  # fmt: skip
        else:
            batch = super()._process(inputs)
        batch["labels"] = self._labels(labels, batch)
        return batch

    def _labels(self, labels: list, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.token_labels:
            length = batch["input_ids"].shape[1]
            padded = [list(row)[:length] + [IGNORE_INDEX] * max(0, length - len(row)) for row in labels]
            return torch.tensor(padded, dtype=torch.long)
        if self.problem_type == "regression":
            return torch.tensor(labels, dtype=torch.float32)
        return torch.tensor(labels, dtype=torch.long)


def evaluation_batches(
    rows: Dataset, collate: LabelledRowCollator, batch_size: int
) -> Iterator[dict[str, Any]]:
    """`rows` in order, in batches of `batch_size`, through `collate`; a batch whose every row is bad has no
    `inputs` (its `num_skipped` counts them). No DataLoader: creating one draws from the global torch
    generator, which a resumed run must find as the uninterrupted run left it."""
    for start in range(0, len(rows), batch_size):
        yield collate([dict(row) for row in rows.select(range(start, min(start + batch_size, len(rows))))])


__all__ = ["LabelledData", "LabelledRowCollator", "evaluation_batches", "load_labelled_data"]
