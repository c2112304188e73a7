"""Fine-tuning run configuration: the pretraining `RunConfig` (training, checkpointing, logging, seed and
output folder, with the same strict YAML + `key=value` parsing) plus the model to start from, the labelled
data and a `finetune` section (head, labels, PEFT, evaluation, early stopping).

    model:    {init_from: outputs/mae/model}          # or no init_from: a new encoder from `preset`
    data:     {source: demo, subset: digits, label_column: label, validation_fraction: 0.1}
    finetune: {head: classification, peft: {method: lora, r: 8}, eval_every: 20, metric_for_best: accuracy}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .config import (
    CheckpointSection,
    LoggingSection,
    ModelSection,
    RunConfig,
    TrainingSection,
    _require_non_negative,
    _require_positive,
    build_section,
    check_hub,
    check_trackers,
    read_config_tree,
    section_key_lines,
    split_command_line,
)

HEADS = ("classification", "regression", "token_classification", "forecasting")
PEFT_METHODS = ("none", "lora", "dora", "ia3")
# Metrics a validation split is scored with; `loss` is always computed. True: higher is better.
METRICS = {"accuracy": True, "f1": True, "loss": False, "mse": False, "mae": False, "r2": True, "mase": False}


@dataclass
class FinetuneDataSection:
    """The labelled data: its `train` split is divided into training and validation rows (seeded, stratified
    by the label when it is a class label), its `test` split scores the best checkpoint at the end.

    Attributes:
        source: `demo` (the demo corpus, see `subset`) or local labelled data (files, a glob, a folder, a
            `save_to_disk` folder; as `tasks.<name>.evaluation[i].source` of pretraining), with `train` and
            `test` splits, or one split divided 80/20.
        subset: the labelled demo subset of the modality (`sentiment`, `digits`, `spoken_digits`, ...).
        label_column: the column holding the labels: class ids (a `ClassLabel` or integers), numbers for
            `regression`, or one class id per token for `token_classification`. Not read by `forecasting`,
            whose targets are the last `finetune.prediction_length` steps of each row's `past_values`.
        text_column: text only: the column holding the text.
        max_length: text: tokens per example (longer texts are cut).
        validation_fraction: share of the training split kept aside to choose the best checkpoint.
        label_fraction: share of the remaining training rows whose labels are used (e.g. 0.1: 10 %, seeded,
            stratified by class), for label-efficiency curves.
        include: keep only rows whose column holds one of the listed values (e.g. `{dataset: [GunPoint]}`).
        on_bad_sample, max_bad_rows_in_a_row, max_bad_rows, num_workers: as in pretraining's `data`.
    """

    source: str = "demo"
    subset: str = ""
    label_column: str = "label"
    text_column: str = "text"
    max_length: int = 128
    validation_fraction: float = 0.1
    label_fraction: float = 1.0
    include: dict[str, list[Any]] = field(default_factory=dict)
    on_bad_sample: Literal["skip", "raise"] = "skip"
    max_bad_rows_in_a_row: int = 100
    max_bad_rows: int = 1000
    num_workers: int = 0


@dataclass
class PeftSection:
    """Parameter-efficient fine-tuning with `peft`: the encoder stays frozen, adapters and the head train.

    Attributes:
        method: `none` (full fine-tuning), `lora`, `dora` (LoRA with `use_dora`) or `ia3`.
        r, alpha, dropout: LoRA/DoRA rank, scaling numerator (`lora_alpha`) and dropout.
        target_modules: module names to adapt (suffixes of module paths, e.g. `[qkv, out_proj]`); null: mmfm's
            defaults for the encoder. Each name must match a module of the model.
        feedforward_modules: IA3 only: which of `target_modules` are feed-forward layers; null: the defaults.
    """

    method: Literal["none", "lora", "dora", "ia3"] = "none"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] | None = None
    feedforward_modules: list[str] | None = None


@dataclass
class FinetuneSection:
    """What is fine-tuned and how the run is judged.

    Attributes:
        head: `classification` (the modality's classifier: sequence, image, audio, graph or series
            classification), `regression` (the same head with `problem_type: regression`) or
            `token_classification` (text: one class per token) or `forecasting` (time series: the next
            `prediction_length` steps of each row's series from the steps before; no label column).
        num_labels: classes (regression: outputs); null: read from the data (a `ClassLabel`'s names, else
            the largest label + 1; 1 for regression). A value that contradicts the data is refused.
        prediction_length: forecasting only: steps forecast (H); null: the model config's (`prediction_length`,
            24 by default). Each series needs H steps plus a minimum context (one patch); shorter rows are
            bad rows (`data.on_bad_sample`).
        problem_type: `single_label_classification`, `multi_label_classification` or `regression`; null:
            from the head.
        peft: see `PeftSection`.
        eval_every: steps between evaluations on the validation split (0: only at the end).
        metric_for_best: the validation metric that chooses the best checkpoint (`accuracy`, `f1`, `loss`;
            regression: `mse`, `mae`, `r2`, `loss`; forecasting: `mse`, `mae`, `mase`, `loss`); null: accuracy, or
            mse for regression and forecasting.
        early_stopping_patience: stop after this many evaluations without improvement (0: never).
        merge_adapter: PEFT only: also write the adapter merged into the encoder as a plain model in `model/`.
    """

    head: Literal["classification", "regression", "token_classification", "forecasting"] = "classification"
    num_labels: int | None = None
    prediction_length: int | None = None
    problem_type: (
        Literal["single_label_classification", "multi_label_classification", "regression"] | None
    ) = None
    peft: PeftSection = field(default_factory=PeftSection)
    eval_every: int = 50
    metric_for_best: Literal["accuracy", "f1", "loss", "mse", "mae", "r2", "mase"] | None = None
    early_stopping_patience: int = 0
    merge_adapter: bool = False

    @property
    def best_metric(self) -> str:
        if self.metric_for_best:
            return self.metric_for_best
        return "mse" if self.is_regression or self.is_forecasting else "accuracy"

    @property
    def is_forecasting(self) -> bool:
        return self.head == "forecasting"

    @property
    def is_regression(self) -> bool:
        return self.head == "regression" or self.problem_type == "regression"


@dataclass
class FinetuneConfig(RunConfig):
    """A fine-tuning run. `modality` names the data's modality (`text`, `vision`, ...); with
    `model.init_from` it may be left empty (the saved model's). `tasks` belongs to pretraining and stays
    empty here."""

    output_dir: str = "outputs/finetune"
    modality: str | None = None
    model: ModelSection = field(default_factory=ModelSection)
    data: FinetuneDataSection = field(default_factory=FinetuneDataSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    training: TrainingSection = field(
        default_factory=lambda: TrainingSection(max_steps=200, learning_rate=1e-3, weight_decay=0.01)
    )
    checkpointing: CheckpointSection = field(default_factory=CheckpointSection)
    logging: LoggingSection = field(default_factory=LoggingSection)


def check_finetune(config: FinetuneConfig) -> None:
    """Checks across fields of a fine-tuning run (single-field types and choices are checked while parsing).

    Raises:
        ValueError: naming the field, the bad value and the fix.
    """
    from ..models import MODALITIES

    if config.tasks:
        raise ValueError(
            "`tasks` configures pretraining; a fine-tuning run has `model`, `data` and `finetune` instead."
        )
    if config.modality is not None and config.modality not in MODALITIES:
        raise ValueError(f"`modality` must be one of {list(MODALITIES)}, got {config.modality!r}.")
    if config.modality is None and not config.model.init_from:
        raise ValueError(
            f"`modality` is empty and there is no `model.init_from` to read it from: set `modality` to one of "
            f"{list(MODALITIES)}."
        )
    data, tune, peft = config.data, config.finetune, config.finetune.peft
    if data.source == "demo" and not data.subset:
        raise ValueError(
            "`data.subset` is empty: name a labelled demo subset (e.g. digits), or set `data.source`."
        )
    for name in ("validation_fraction", "label_fraction"):
        value = getattr(data, name)
        if not 0 < value <= (1 if name == "label_fraction" else 0.5):
            bound = "1" if name == "label_fraction" else "0.5"
            raise ValueError(f"`data.{name}` must be in (0, {bound}], got {value}.")
    _require_positive(data, "data", "max_length", "max_bad_rows_in_a_row", "max_bad_rows")
    _require_non_negative(data, "data", "num_workers")
    if tune.num_labels is not None and tune.num_labels < 1:
        raise ValueError(f"`finetune.num_labels` must be >= 1, got {tune.num_labels}.")
    if tune.head == "regression" and tune.problem_type not in (None, "regression"):
        raise ValueError(
            f"`finetune.head` = regression contradicts `finetune.problem_type` = {tune.problem_type!r}; leave "
            "problem_type unset."
        )
    if tune.prediction_length is not None and not tune.is_forecasting:
        raise ValueError(
            f"`finetune.prediction_length` = {tune.prediction_length} is a forecasting setting; `finetune.head` is "
            f"{tune.head}. Set `finetune.head=forecasting` or drop it."
        )
    if tune.is_forecasting:
        _check_forecasting(config)
    kind = "forecasting" if tune.is_forecasting else "regression" if tune.is_regression else "classification"
    scoring = {"classification": {"accuracy", "f1"}, "regression": {"mse", "mae", "r2"},
               "forecasting": {"mse", "mae", "mase"}}[kind] | {"loss"}  # fmt: skip
    if tune.metric_for_best is not None and tune.metric_for_best not in scoring:
        raise ValueError(
            f"`finetune.metric_for_best` = {tune.metric_for_best} does not score {kind}; choose one of "
            f"{sorted(scoring)}."
        )
    _require_non_negative(tune, "finetune", "eval_every", "early_stopping_patience")
    if tune.merge_adapter and peft.method == "none":
        raise ValueError("`finetune.merge_adapter` merges a PEFT adapter: set `finetune.peft.method` too.")
    if peft.method != "none":
        _require_positive(peft, "finetune.peft", "r", "alpha")
        if not 0 <= peft.dropout < 1:
            raise ValueError(f"`finetune.peft.dropout` must be in [0, 1), got {peft.dropout}.")
        if peft.target_modules is not None and not peft.target_modules:
            raise ValueError(
                "`finetune.peft.target_modules` is empty: name modules, or null for the defaults."
            )
    if peft.feedforward_modules is not None and peft.method != "ia3":
        raise ValueError(
            "`finetune.peft.feedforward_modules` is an IA3 setting; `finetune.peft.method` is not ia3."
        )
    _require_positive(
        config.training, "training", "max_steps", "per_device_batch_size", "gradient_accumulation_steps",
        "learning_rate", "max_nonfinite_steps",
    )  # fmt: skip
    _require_non_negative(config.training, "training", "weight_decay")
    if not 0 <= config.training.warmup_ratio < 1:
        raise ValueError(f"`training.warmup_ratio` must be in [0, 1), got {config.training.warmup_ratio}.")
    if config.training.max_grad_norm is not None and config.training.max_grad_norm <= 0:
        raise ValueError("`training.max_grad_norm` must be > 0, or null to turn clipping off.")
    _require_non_negative(config.checkpointing, "checkpointing", "save_every")
    _require_positive(config.checkpointing, "checkpointing", "keep_last")
    _require_positive(config.logging, "logging", "log_every")
    check_trackers(config.logging.report_to)
    check_hub(config)  # `hub.push_to_hub` pushes `adapter/` or `model/` at the end (Trainer.finish)


def _check_forecasting(config: FinetuneConfig) -> None:
    """`finetune.head: forecasting`: time series only; no class-label settings; a positive horizon."""
    tune = config.finetune
    if config.modality not in (None, "timeseries"):
        raise ValueError(
            f"`finetune.head` = forecasting forecasts time series, but `modality` is {config.modality!r}; set "
            "`modality=timeseries`."
        )
    if tune.prediction_length is not None and tune.prediction_length < 1:
        raise ValueError(f"`finetune.prediction_length` must be >= 1, got {tune.prediction_length}.")
    if tune.problem_type is not None or tune.num_labels is not None:
        raise ValueError(
            "`finetune.head` = forecasting has no classes: drop `finetune.problem_type` and `finetune.num_labels` "
            "(the horizon is `finetune.prediction_length`)."
        )
    if config.data.label_column == "past_values":
        raise ValueError(
            "`data.label_column` = 'past_values': forecasting takes its targets from the end of `past_values` "
            "itself; leave `data.label_column` at its default (it is not read)."
        )


def load_finetune_config(
    path: str | Path | None, overrides: list[str] = (), default: str | Path | None = None
) -> FinetuneConfig:
    """Read a fine-tuning YAML (or `default`), apply `key=value` overrides, validate.

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ValueError/TypeError: an unknown key (the valid ones listed), a value of the wrong type or outside its
            choices, or an inconsistent run.
    """
    tree = read_config_tree(path, overrides, default, kind="finetune")
    config = build_section(FinetuneConfig, tree, "")
    check_finetune(config)
    return config


def describe_finetune_keys() -> str:
    """Every fine-tuning config key, by section (the `--help` epilog)."""
    lines = ["config keys (documented in mmfm/training/finetune_config.py and config.py):"]
    lines += section_key_lines(FinetuneConfig, {"tasks": None})  # `tasks` is pretraining's
    return "\n".join(lines)


def parse_finetune_command_line(argv: list[str], default: str | Path | None = None) -> FinetuneConfig:
    """`[--config FILE] [key=value ...]` -> a checked `FinetuneConfig` (`default` when no `--config`)."""
    path, overrides = split_command_line(
        argv,
        "mmfm fine-tuning of an encoder with a downstream head, fully or with PEFT (LoRA, DoRA, IA3). Fields "
        "are overridden with key=value, e.g. finetune.peft.method=lora training.max_steps=100.",
        describe_finetune_keys(),
    )
    return load_finetune_config(path, overrides, default=default)


__all__ = [
    "HEADS",
    "METRICS",
    "PEFT_METHODS",
    "FinetuneConfig",
    "FinetuneDataSection",
    "FinetuneSection",
    "PeftSection",
    "check_finetune",
    "load_finetune_config",
    "parse_finetune_command_line",
]
