"""Labelled data of a fine-tuning run: training, validation and test rows with their labels checked against
the head, and the collator that turns rows into encoder inputs plus `labels`.

The validation rows are carved from the training split (seeded, stratified by class), so the test split
is only read once, for the best checkpoint. `label_fraction` keeps a seeded, stratified share of the
training rows, for label-efficiency curves.

Forecasting (`finetune.head: forecasting`) has no label column: each row's series is split into its last
`prediction_length` steps (the targets, `future_values`) and the steps before them (the context, cut to the
encoder's `context_length`). Every split uses each series' last window, so the targets are deterministic
(nothing to reseed on resume) and the validation and test rows score the same kind of forecast.
"""

from __future__ import annotations

import logging
import warnings
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
        problem_type: transformers' `problem_type` of the head (`forecasting` for the forecasting head).
        prediction_length: forecasting only: steps forecast (H).
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    num_labels: int
    id2label: dict[int, str]
    problem_type: str
    prediction_length: int | None = None


def forecast_lengths(config: FinetuneConfig, spec: ModalitySpec) -> tuple[int, int]:
    """(prediction_length, minimum context) of a forecasting run: `finetune.prediction_length`, else the model
    config's (the saved model's, or the preset's with `model.config`); the minimum context is one patch."""
    from transformers import AutoConfig

    from .finetune_model import resolve_init_from

    if config.model.init_from:
        encoder = AutoConfig.from_pretrained(resolve_init_from(config.model.init_from))
    else:
        encoder = spec.config_class.from_preset(config.model.preset, **config.model.config)
    return config.finetune.prediction_length or encoder.prediction_length, encoder.patch_length


def load_labelled_data(config: FinetuneConfig, spec: ModalitySpec) -> LabelledData:
    """Train/validation/test rows of `config.data` for a `spec` encoder, with labels checked against
    `config.finetune`.

    Raises:
        ValueError: the label column is missing (the columns present named), the modality's columns are
            missing, `finetune.num_labels` contradicts the labels, a regression label is not numeric, or a
            split is too small.
    """
    data = config.data
    if config.finetune.is_forecasting:
        return _load_forecasting_data(config, spec)
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


def _load_forecasting_data(config: FinetuneConfig, spec: ModalitySpec) -> LabelledData:
    """Train/validation/test series for forecasting (no label column; see the module docstring). A series too
    short for `prediction_length` steps plus one patch of context is a bad row: `data.on_bad_sample=raise`
    refuses it, `skip` drops and counts it."""
    data = config.data
    series = spec.required_columns[0]  # `past_values`: local data must have it (it stands in for a label)
    train, test = load_labelled_splits(data.source, spec, "data", series, data.subset, seed=config.seed)
    for column, values in data.include.items():
        train, test = (keep_values(rows, column, values, "data") for rows in (train, test))
    horizon, context = forecast_lengths(config, spec)
    train, test = (
        _long_enough(undecoded(rows).select_columns([series]), horizon, context, config, name)
        for name, rows in (("train", train), ("test", test))
    )
    halves = train.train_test_split(test_size=data.validation_fraction, seed=config.seed)
    train, validation = halves["train"], halves["test"]
    if data.label_fraction < 1:
        train = train.train_test_split(train_size=data.label_fraction, seed=config.seed)["train"]
        logger.info("data.label_fraction = %s: training on %d series.", data.label_fraction, len(train))
    if len(validation) == 0 or len(test) == 0:
        raise ValueError(
            f"{_describe(data)} leaves no validation or test rows; raise `data.validation_fraction`."
        )
    return LabelledData(train, validation, test, 1, {}, "forecasting", horizon)


def _long_enough(rows: Dataset, horizon: int, context: int, config: FinetuneConfig, split: str) -> Dataset:
    """`rows` whose series have at least `horizon + context` steps; shorter ones refused or dropped and counted."""
    lengths = [len(value) if value is not None else 0 for value in rows["past_values"]]
    short = [i for i, length in enumerate(lengths) if length < horizon + context]
    if not short:
        return rows
    first = short[0]
    where = f"{_describe(config.data)} ({split})"
    problem = (
        f"{len(short)} of {len(rows)} series of {where} are shorter than `finetune.prediction_length` ({horizon}) "
        f"+ a minimum context of one patch ({context}) = {horizon + context} steps (e.g. row {first}: "
        f"{lengths[first]} steps)"
    )
    fix = "Lower `finetune.prediction_length`, or drop the short series"
    if config.data.on_bad_sample == "raise" or len(short) == len(rows):
        raise ValueError(f"{problem}. {fix}" + (" (`data.on_bad_sample=skip` drops them)." if
                                                 len(short) < len(rows) else "."))  # fmt: skip
    logger.warning(
        "%s: skipped (data.on_bad_sample=skip); lower `finetune.prediction_length` to keep them.", problem
    )
    keep = sorted(set(range(len(rows))) - set(short))
    return rows.select(keep)


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

    def __init__(
        self,
        spec: ModalitySpec,
        processor: Any,
        config: FinetuneConfig,
        problem_type: str,
        prediction_length: int | None = None,
    ):
        data = config.data
        # The processor options pretraining uses for the modality (e.g. time series and audio cut to the
        # encoder's length), from its default objective.
        options = dict(get_objective(spec.default_objective).processor_kwargs)
        super().__init__(
            spec, processor, options, "data", data.text_column, data.max_length, data.on_bad_sample
        )
        self.label_column, self.problem_type = data.label_column, problem_type
        self.token_labels = config.finetune.head == "token_classification"
        self.prediction_length = prediction_length

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
        if self.prediction_length is not None:
            return self._forecast(rows)
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

    def _forecast(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """Each series -> the context (all but its last H steps, through the processor: cut to the encoder's
        `context_length`, padded on the left) and `future_values` (B, H, C), `future_observed_mask` (B, H, C)
        (0 where a target is NaN), plus `naive_scale` (B, C): the mean absolute one-step change of the observed
        context, which scales MASE (not a model input)."""
        horizon = self.prediction_length
        series = [np.asarray(row["past_values"], dtype=np.float32) for row in rows]
        series = [values[:, None] if values.ndim == 1 else values for values in series]  # (L, C)
        if any(len(values) <= horizon for values in series):
            raise ValueError(
                f"a series has no steps before its last {horizon} (`finetune.prediction_length`)"
            )
        batch = super()._process([{"past_values": values[:-horizon]} for values in series])
        future = torch.from_numpy(np.stack([values[-horizon:] for values in series]))
        observed = ~torch.isnan(future)
        batch["future_values"] = torch.nan_to_num(future)
        batch["future_observed_mask"] = observed.long()
        batch["naive_scale"] = torch.from_numpy(
            np.stack([_naive_scale(values[:-horizon]) for values in series])
        )
        return batch

    def _labels(self, labels: list, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.token_labels:
            length = batch["input_ids"].shape[1]
            padded = [list(row)[:length] + [IGNORE_INDEX] * max(0, length - len(row)) for row in labels]
            return torch.tensor(padded, dtype=torch.long)
        if self.problem_type == "regression":
            return torch.tensor(labels, dtype=torch.float32)
        return torch.tensor(labels, dtype=torch.long)


def _naive_scale(context: np.ndarray) -> np.ndarray:
    """(C,) mean absolute one-step change of a (L, C) context over observed neighbours (NaN where none)."""
    changes = np.abs(np.diff(context, axis=0))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: NaN, left out of MASE
        return np.nanmean(changes, axis=0).astype(np.float32)


def evaluation_batches(
    rows: Dataset, collate: LabelledRowCollator, batch_size: int
) -> Iterator[dict[str, Any]]:
    """`rows` in order, in batches of `batch_size`, through `collate`; a batch whose every row is bad has no
    `inputs` (its `num_skipped` counts them). No DataLoader: creating one draws from the global torch
    generator, which a resumed run must find as the uninterrupted run left it."""
    for start in range(0, len(rows), batch_size):
        yield collate([dict(row) for row in rows.select(range(start, min(start + batch_size, len(rows))))])


__all__ = [
    "LabelledData",
    "LabelledRowCollator",
    "evaluation_batches",
    "forecast_lengths",
    "load_labelled_data",
]
