"""What every downstream head shares: its Auto classes, the initialisation of its new layers, and the label
checks and losses of transformers' own heads (`BertForSequenceClassification`, `BertForTokenClassification`).

The heads themselves live next to their encoder (`modeling_mmfm_<modality>.py`, as transformers keeps
`BertForSequenceClassification` in `modeling_bert.py`), so every export of a modality ships their code and
its `auto_map` can name each of them.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from typing import ClassVar

import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers import initialization as init
from transformers.loss.loss_utils import ForSequenceClassificationLoss, ForTokenClassification

from .mmfm_layers import InputDtypeError, check_tensor
from .pipeline_mmfm import custom_pipelines

IGNORE_INDEX = -100
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


class MMFMHeadMixin:
    """Mixed into each downstream head (before the modality's pretrained-model base).

    Class attributes:
        auto_classes: the Auto classes that load the head (its `_auto_class`, written to `auto_map` on save,
            is the first); the encoder configuration's `auto_map_classes` lists them for every export.
        head_modules: names of the layers the head adds on top of the encoder (what a PEFT adapter trains
            in full, `modules_to_save`); they are initialised here and left out of encoder checkpoints.
        pipeline_tasks: the pipeline tasks of `pipeline_mmfm.py` that serve the head, for the tasks
            transformers has no pipeline for (graph, time series); written to `config.custom_pipelines` on save,
            and this folder's `pipeline_mmfm.py` is saved with the model.
    """

    auto_classes: ClassVar[tuple[str, ...]] = ()
    head_modules: ClassVar[tuple[str, ...]] = ("classifier",)
    pipeline_tasks: ClassVar[tuple[str, ...]] = ()
    # `Trainer` passes `num_items_in_batch` to the heads that take it (exact loss under gradient accumulation).
    accepts_loss_kwargs: ClassVar[bool] = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # The new layers start as BERT's and ViT's classifiers do: N(0, initializer_range) weights, zero bias.
        if any(module is getattr(self, name, None) for name in self.head_modules):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)

    def save_pretrained(self, save_directory, *args, **kwargs):
        if self.pipeline_tasks:
            self.config.custom_pipelines = custom_pipelines(self.pipeline_tasks)
        return super().save_pretrained(save_directory, *args, **kwargs)


def classifier_dropout(config: PreTrainedConfig) -> nn.Dropout:
    """Dropout before a classifier: `config.classifier_dropout`, else `hidden_dropout_prob` (as BERT)."""
    rate = config.classifier_dropout
    return nn.Dropout(config.hidden_dropout_prob if rate is None else rate)


def resolve_problem_type(config: PreTrainedConfig, labels: torch.Tensor) -> str:
    """The problem type a loss on `labels` uses: `config.problem_type`, else transformers' inference (one label:
    regression; integer labels: single-label; otherwise multi-label). Does not change `config`."""
    if config.problem_type is not None:
        if config.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                f"config.problem_type must be one of {PROBLEM_TYPES}, got {config.problem_type!r}."
            )
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if labels.dtype in (torch.long, torch.int):
        return "single_label_classification"
    return "multi_label_classification"


def check_sequence_labels(
    labels: torch.Tensor,
    config: PreTrainedConfig,
    batch_size: int,
    device: torch.device | None = None,
) -> str:
    """Check one label (row) per sample against the problem type and return that problem type.

    single-label: integer class ids of shape (B,), in [0, num_labels) or -100 (ignored); multi-label: float
    0/1 targets of shape (B, num_labels); regression: float targets of shape (B,) (one label) or
    (B, num_labels). Value ranges are read (a device sync) only with `config.validate_inputs`.

    Raises:
        TypeError: `labels` is not a tensor, or has the wrong dtype for the problem type.
        ValueError: a wrong shape, batch size or device, or a class id out of range.
    """
    check_tensor("labels", labels, "(batch_size,) or (batch_size, num_labels)", device=device)
    problem = resolve_problem_type(config, labels)
    num_labels = config.num_labels
    if labels.dim() == 0 or labels.shape[0] != batch_size:
        raise ValueError(
            f"`labels` must hold one entry per sample (batch size {batch_size}), got shape {tuple(labels.shape)}."
        )
    if problem == "single_label_classification":
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise InputDtypeError(
                f"`labels` must hold integer class ids for problem_type='single_label_classification', got dtype "
                f"{labels.dtype}. Cast with `.long()`, or set config.problem_type to 'regression' or "
                "'multi_label_classification'."
            )
        if labels.numel() != batch_size:
            raise ValueError(
                f"`labels` must have shape ({batch_size},) (one class id per sample) for single-label "
                f"classification, got {tuple(labels.shape)}."
            )
        if config.validate_inputs:
            scored = labels[labels != IGNORE_INDEX]
            if scored.numel() and (int(scored.min()) < 0 or int(scored.max()) >= num_labels):
                raise ValueError(
                    f"`labels` must be -100 or class ids in [0, num_labels={num_labels}), got values in "
                    f"[{int(scored.min())}, {int(scored.max())}]. Set num_labels (or id2label) on the config."
                )
        return problem
    if not labels.is_floating_point():
        raise InputDtypeError(
            f"`labels` must hold floating-point targets for problem_type={problem!r}, got dtype {labels.dtype}. "
            "Cast with `.float()`" + (
                ", or pass integer class ids with config.problem_type='single_label_classification'."
                if problem == "multi_label_classification" else "."
            )
        )  # fmt: skip
    if problem == "regression" and num_labels == 1:
        if labels.numel() != batch_size:
            raise ValueError(
                f"`labels` must have shape ({batch_size},) for regression with num_labels=1, got "
                f"{tuple(labels.shape)}."
            )
    elif tuple(labels.shape) != (batch_size, num_labels):
        raise ValueError(
            f"`labels` must have shape ({batch_size}, {num_labels}) (batch_size, num_labels) for "
            f"problem_type={problem!r}, got {tuple(labels.shape)}."
        )
    return problem


def sequence_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: PreTrainedConfig,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """transformers' loss of a sequence classifier (`ForSequenceClassificationLoss`, as BERT's): MSE for
    regression, cross-entropy (ignoring -100) for single-label, BCE with logits for multi-label. `logits` is
    (B, num_labels). Sets `config.problem_type` when it was None, as transformers does."""
    check_sequence_labels(labels, config, logits.shape[0], logits.device)
    kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    return ForSequenceClassificationLoss(labels, logits, config, **kwargs)


def token_classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    config: PreTrainedConfig,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of (B, L, num_labels) `logits` against (B, L) class ids, -100 where no loss is wanted
    (transformers' `ForTokenClassification`). Raises `ValueError`/`TypeError` naming `labels` when they do not
    fit."""
    check_tensor("labels", labels, "(batch_size, sequence_length)", 2, "integer", logits.device)
    if tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"`labels` must have the shape of `input_ids` {tuple(logits.shape[:2])} (one class id per token, "
            f"-100 where no loss is wanted), got {tuple(labels.shape)}."
        )
    if config.validate_inputs:
        scored = labels[labels != IGNORE_INDEX]
        if scored.numel() and (int(scored.min()) < 0 or int(scored.max()) >= config.num_labels):
            raise ValueError(
                f"`labels` must be -100 or class ids in [0, num_labels={config.num_labels}), got values in "
                f"[{int(scored.min())}, {int(scored.max())}]."
            )
    kwargs = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    return ForTokenClassification(logits, labels, config, **kwargs)


__all__ = [
    "IGNORE_INDEX",
    "PROBLEM_TYPES",
    "MMFMHeadMixin",
    "check_sequence_labels",
    "classifier_dropout",
    "resolve_problem_type",
    "sequence_classification_loss",
    "token_classification_loss",
]
