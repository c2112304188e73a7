"""The model of a fine-tuning run: the modality's downstream head on an encoder that starts from a saved
model (`model.init_from`: a local export or a Hub id; pretraining heads in it are dropped) or from a new one
(`model.preset` + `model.config`: the random-init baseline), optionally wrapped in a PEFT adapter.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AutoConfig, PreTrainedModel

from ..modalities import ModalitySpec, get_modality, modality_of_config
from .finetune_config import FinetuneConfig
from .finetune_data import LabelledData
from .tasks import check_loaded_weights

logger = logging.getLogger(__name__)

# (modality, finetune.head) -> the head class in `mmfm.models` (regression reuses the classifier of a
# modality with `problem_type: regression`, as transformers' heads do, unless the modality has its own).
HEAD_CLASSES = {
    ("text", "classification"): "MMFMTextForSequenceClassification",
    ("text", "regression"): "MMFMTextForSequenceClassification",
    ("text", "token_classification"): "MMFMTextForTokenClassification",
    ("vision", "classification"): "MMFMVisionForImageClassification",
    ("vision", "regression"): "MMFMVisionForImageClassification",
    ("audio", "classification"): "MMFMAudioForAudioClassification",
    ("audio", "regression"): "MMFMAudioForAudioClassification",
    ("graph", "classification"): "MMFMGraphForGraphClassification",
    ("graph", "regression"): "MMFMGraphForGraphClassification",
    ("timeseries", "classification"): "MMFMTimeSeriesForClassification",
    ("timeseries", "regression"): "MMFMTimeSeriesForRegression",
    ("timeseries", "forecasting"): "MMFMTimeSeriesForPrediction",
}


def resolve_init_from(value: str) -> str:
    """The local folder of `model.init_from` (a folder, or a Hub id resolved in the local Hub cache)."""
    from .pretrained import resolve_model_source

    return resolve_model_source(value, "model.init_from").folder


def finetune_modality(config: FinetuneConfig) -> ModalitySpec:
    """The modality of the run: the saved model's when `model.init_from` is set (which must agree with
    `modality` when both are given), else `modality`.

    Raises:
        ValueError: the saved model is no mmfm encoder, or of another modality than `modality`.
    """
    if not config.model.init_from:
        return get_modality(config.modality)
    saved = AutoConfig.from_pretrained(resolve_init_from(config.model.init_from))
    try:
        modality = modality_of_config(saved)
    except ValueError:
        raise ValueError(
            f"`model.init_from` = {config.model.init_from!r} holds a {type(saved).__name__}, not an mmfm encoder "
            "of one modality; fine-tune an export of one encoder (a pretraining run's `model/`)."
        ) from None
    if config.modality is not None and modality != config.modality:
        raise ValueError(
            f"`model.init_from` = {config.model.init_from!r} is a {modality} model, but `modality` is "
            f"{config.modality!r} (the data and the head are {config.modality}): start from a {config.modality} "
            f"model, or set `modality={modality}` with {modality} data."
        )
    return get_modality(modality)


def head_class(spec: ModalitySpec, head: str) -> type[PreTrainedModel]:
    """The head class for `finetune.head` on a `spec` encoder.

    Raises:
        ValueError: the modality has no such head (the heads it has listed).
    """
    from .. import models

    name = HEAD_CLASSES.get((spec.name, head))
    if name is None:
        heads = sorted(h for m, h in HEAD_CLASSES if m == spec.name)
        raise ValueError(
            f"`finetune.head` = {head!r} does not fit a {spec.name} encoder; its heads are {heads}."
        )
    return getattr(models, name)


def build_finetune_model(
    config: FinetuneConfig, spec: ModalitySpec, labels: LabelledData, tokenizer, first_row: dict
) -> PreTrainedModel:
    """The head model: `from_pretrained(init_from)` (encoder weights loaded, the head new), or `_from_config`
    of a new encoder config. Every process must call it (ZeRO-3 builds partitioned).

    Raises:
        ValueError: encoder weights that do not fit, a data field (e.g. graph node-feature width) that
            contradicts the saved model, or `model.config` keys the modality's config does not have.
    """
    cls = head_class(spec, config.finetune.head)
    head_fields = {
        "num_labels": labels.num_labels,
        "id2label": labels.id2label,
        "label2id": {name: i for i, name in labels.id2label.items()},
        "problem_type": labels.problem_type,
    }
    if labels.prediction_length is not None:  # forecasting: the horizon is the head's only output setting
        head_fields = {"prediction_length": labels.prediction_length}
    attn = config.training.attn_implementation
    data_fields = spec.fields_from_data(first_row)
    if config.model.init_from:
        folder = resolve_init_from(config.model.init_from)
        saved = AutoConfig.from_pretrained(folder)
        for name, value in data_fields.items():
            if getattr(saved, name, value) != value:
                raise ValueError(
                    f"`model.init_from` = {config.model.init_from!r} has {name}={getattr(saved, name)!r}, but the "
                    f"data has {name}={value!r}: fine-tune it on data of the same shape."
                )
        # A saved model keeps its architecture: `model.config` may only repeat it (`preset` is not applied).
        for name, value in config.model.config.items():
            if getattr(saved, name, value) != value:
                raise ValueError(
                    f"`model.config.{name}` = {value!r}, but `model.init_from` = {config.model.init_from!r} has "
                    f"{name}={getattr(saved, name)!r}: set `model.config.{name}={getattr(saved, name)}` or drop it."
                )
        model, info = cls.from_pretrained(
            folder,
            **head_fields,
            attn_implementation=attn,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
        )
        check_loaded_weights(model, _without_pretraining_heads(model, info), folder, "model.init_from")
        return model
    fields = {**data_fields, **config.model.config, **head_fields}
    if tokenizer is not None:
        fields.setdefault("vocab_size", len(tokenizer))
        fields.setdefault("pad_token_id", tokenizer.pad_token_id)
    known = set(spec.config_class().to_dict())
    unknown = sorted(set(config.model.config) - known)
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in `model.config` for {spec.config_class.__name__}; valid keys: "
            f"{sorted(k for k in known if not k.startswith('_'))}."
        )
    try:
        encoder_config = spec.config_class.from_preset(config.model.preset, **fields)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`model`: {err}") from err
    return cls._from_config(encoder_config, attn_implementation=attn)


def _without_pretraining_heads(model: PreTrainedModel, info: dict) -> dict:
    """`loading_info` less the saved weights outside the encoder (a pretraining export's decoder or LM head),
    which fine-tuning drops on purpose."""
    prefix = f"{model.base_model_prefix}."
    dropped = [key for key in info["unexpected_keys"] if not key.startswith(prefix)]
    if dropped:
        logger.info(
            "model.init_from: %d pretraining head weight(s) are not used (e.g. %s).",
            len(dropped),
            dropped[:2],
        )
    return {**info, "unexpected_keys": [key for key in info["unexpected_keys"] if key.startswith(prefix)]}


# ---------------------------------------------------------------------------------------------- PEFT


def wrap_peft(model: PreTrainedModel, config: FinetuneConfig) -> Any:
    """`model` wrapped by `peft.get_peft_model` with the adapter of `finetune.peft` (the model itself for
    `method: none`); the head's layers train in full (`modules_to_save`). The task type and the defaults of
    `target_modules` are the model folder's (`mmfm.peft_defaults`).

    Raises:
        ValueError: a target module name that matches no module of the model (the linear layers listed).
    """
    from peft import IA3Config, LoraConfig, get_peft_model

    from ..peft_defaults import peft_task

    peft = config.finetune.peft
    if peft.method == "none":
        return model
    for field, names in (
        ("target_modules", peft.target_modules),
        ("feedforward_modules", peft.feedforward_modules),
    ):
        check_module_names(model, names or [], f"finetune.peft.{field}")
    task = peft_task(model)
    common = {"modules_to_save": list(task.modules_to_save), "task_type": task.task_type}
    if peft.target_modules:  # otherwise peft reads the defaults mmfm registered for the model type
        common["target_modules"] = list(peft.target_modules)
    if peft.method == "ia3":
        if peft.feedforward_modules:
            common["feedforward_modules"] = list(peft.feedforward_modules)
        adapter = IA3Config(**common)
    else:
        adapter = LoraConfig(
            r=peft.r,
            lora_alpha=peft.alpha,
            lora_dropout=peft.dropout,
            use_dora=peft.method == "dora",
            **common,
        )
    try:
        wrapped = get_peft_model(model, adapter)
    except ValueError as err:
        raise ValueError(f"`finetune.peft` ({peft.method}): {err}") from err
    trainable, total = wrapped.get_nb_trainable_parameters()
    logger.info(
        "PEFT %s: %d of %d parameters train (%.2f%%).", peft.method, trainable, total, 100 * trainable / total
    )
    return wrapped


def check_module_names(model: PreTrainedModel, names: list[str], field: str) -> None:
    """Every name matches a module as peft matches list entries: the whole module path or its last parts.

    Raises:
        ValueError: naming the field, the name and the model's linear layers.
    """
    paths = [path for path, _ in model.named_modules()]
    for name in names:
        if not any(path == name or path.endswith(f".{name}") for path in paths):
            linear = sorted(
                {p.rsplit(".", 1)[-1] for p, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
            )
            raise ValueError(
                f"`{field}` names {name!r}, which matches no module of {type(model).__name__}; its linear layers "
                f"are {linear}."
            )


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, all) parameters (ZeRO-3 partitions counted whole)."""
    sizes = [(getattr(p, "ds_numel", p.numel()), p.requires_grad) for p in model.parameters()]
    return sum(n for n, t in sizes if t), sum(n for n, _ in sizes)


__all__ = [
    "HEAD_CLASSES",
    "build_finetune_model",
    "count_parameters",
    "finetune_modality",
    "head_class",
    "wrap_peft",
]
