"""Objectives as the recipe knows them: which pretraining model, which config fields and which text
corruption each name stands for, and how a task's model, tokenizer and processor are built.

Adding an objective here (and its YAML under `recipes/configs/`) is all the recipe needs.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedModel

from ..data.collators import (
    DataCollatorForCausalLM,
    DataCollatorForMaskedLM,
    DataCollatorForTokenSubstitution,
)
from ..data.demo import load_demo_tokenizer
from ..models import CONFIG_CLASSES
from ..models.modeling_mmfm_audio import MMFMAudioForPreTraining
from ..models.modeling_mmfm_graph import MMFMGraphForPreTraining
from ..models.modeling_mmfm_text import MMFMTextForCausalLM, MMFMTextForMaskedLM, MMFMTextForPreTraining
from ..models.modeling_mmfm_timeseries import MMFMTimeSeriesForPreTraining
from ..models.modeling_mmfm_vision import MMFMVisionForPreTraining
from .config import TaskSection

logger = logging.getLogger(__name__)


def _masked_lm_collator(tokenizer, config):
    return DataCollatorForMaskedLM(
        tokenizer, mlm_probability=config.mlm_probability, mask_replace_prob=config.mask_replace_prob,
        random_replace_prob=config.random_replace_prob, whole_word_mask=config.whole_word_mask,
    )  # fmt: skip


def _substitution_collator(tokenizer, config):
    return DataCollatorForTokenSubstitution(
        tokenizer,
        substitution_probability=config.substitution_probability,
        whole_word_mask=config.whole_word_mask,
    )


@dataclass(frozen=True)
class Objective:
    """What one objective name means.

    Attributes:
        modality: the modality token (`text`, `vision`, ...).
        model_class: the `*ForPreTraining` class trained (and exported).
        config_fields: fields the objective fixes in the model config (e.g. `pretraining_objective`).
        text_collator: text only: `(tokenizer, config) -> collator` that pads and corrupts token ids.
        processor_kwargs: options for the modality's processor (e.g. truncate long clips).
    """

    modality: str
    model_class: type[PreTrainedModel]
    config_fields: dict[str, Any] = field(default_factory=dict)
    text_collator: Callable[[Any, Any], Any] | None = None
    processor_kwargs: dict[str, Any] = field(default_factory=dict)


OBJECTIVES: dict[str, Objective] = {
    "mlm": Objective("text", MMFMTextForMaskedLM, text_collator=_masked_lm_collator),
    "clm": Objective("text", MMFMTextForCausalLM, {"is_causal": True}, lambda tok, cfg: DataCollatorForCausalLM(tok)),
    "rts": Objective("text", MMFMTextForPreTraining, text_collator=_substitution_collator),
    "mae": Objective("vision", MMFMVisionForPreTraining, {"pretraining_objective": "mae"}),
    "droppos": Objective("vision", MMFMVisionForPreTraining, {"pretraining_objective": "droppos"}),
    "ssast": Objective("audio", MMFMAudioForPreTraining, processor_kwargs={"truncation": True}),
    "graphmae": Objective("graph", MMFMGraphForPreTraining),
    "ts_masked": Objective(
        "timeseries", MMFMTimeSeriesForPreTraining, {"pretraining_objective": "masked"}, None, {"truncation": True}
    ),
    "ts_autoregressive": Objective(
        "timeseries", MMFMTimeSeriesForPreTraining, {"pretraining_objective": "autoregressive", "is_causal": True},
        None, {"truncation": True},
    ),
}  # fmt: skip

# What throughput counts per modality ("tokens/s" for text, "patches/s" for vision, ...).
UNIT_NAMES = {
    "text": "tokens",
    "vision": "patches",
    "audio": "patches",
    "graph": "nodes",
    "timeseries": "patches",
}


def load_tokenizer(task: TaskSection, where: str):
    """The task's tokenizer: the one saved with `init_from`, else `model.tokenizer` (`demo` or a folder)."""
    saved = task.model.init_from
    if saved and any(Path(saved, name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        return AutoTokenizer.from_pretrained(saved)
    if task.model.tokenizer == "demo":
        return load_demo_tokenizer()
    if Path(task.model.tokenizer).is_dir():
        return AutoTokenizer.from_pretrained(task.model.tokenizer)
    raise FileNotFoundError(
        f"`{where}.model.tokenizer` = {task.model.tokenizer!r} is neither `demo` nor a tokenizer folder."
    )


def fields_from_data(modality: str, first_row: dict) -> dict[str, Any]:
    """Config fields the data decides: the graph node-feature width (F of the (N, F) `node_features`)."""
    if modality == "graph" and first_row.get("node_features") is not None:
        features = first_row["node_features"]
        return {"node_feature_size": len(features[0]) if len(features) else 1}
    return {}


def build_model_config(task: TaskSection, where: str, tokenizer=None, data_fields: dict | None = None):
    """The encoder config of a new model: preset, then the objective's fields, then `model.config`.

    Raises:
        ValueError: a `model.config` key the modality's config does not have (the message lists them), or
            an inconsistent value (the config's own checks).
    """
    objective = OBJECTIVES[task.objective]
    config_class = CONFIG_CLASSES[objective.modality]
    known = set(config_class().to_dict())
    unknown = sorted(set(task.model.config) - known)
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in `{where}.model.config` for {config_class.__name__}; valid keys: "
            f"{sorted(k for k in known if not k.startswith('_'))}."
        )
    fields = {**(data_fields or {}), **objective.config_fields, **task.model.config}
    if tokenizer is not None:
        fields.setdefault("vocab_size", len(tokenizer))
        fields.setdefault("pad_token_id", tokenizer.pad_token_id)
    try:
        return config_class.from_preset(task.model.preset, **fields)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`{where}.model`: {err}") from err


def build_model(
    task: TaskSection, where: str, tokenizer, attn_implementation: str, data_fields: dict | None = None
) -> PreTrainedModel:
    """A new pretraining model (`_from_config`, which DeepSpeed ZeRO-3 partitions while building it), or
    the saved one in `model.init_from` (`from_pretrained`, also partitioned under ZeRO-3). Every process
    must call this: under ZeRO-3 building is a collective operation."""
    objective = OBJECTIVES[task.objective]
    if task.model.init_from:
        if not Path(task.model.init_from, "config.json").is_file():
            raise FileNotFoundError(
                f"`{where}.model.init_from` = {task.model.init_from!r} holds no config.json."
            )
        return objective.model_class.from_pretrained(
            task.model.init_from, attn_implementation=attn_implementation
        )
    config = build_model_config(task, where, tokenizer, data_fields)
    return objective.model_class._from_config(config, attn_implementation=attn_implementation)


def forward_input_names(model: torch.nn.Module) -> set[str]:
    """The named inputs of a model's `forward` (processor outputs such as time-series `loc`/`scale` that
    the model does not take are dropped before the call)."""
    parameters = inspect.signature(model.forward).parameters.values()
    return {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def count_units(modality: str, inputs: dict[str, torch.Tensor], model_config) -> int:
    """Tokens (text), patches (vision, audio, time series) or nodes (graph) in a batch: the unit of the
    `<unit>/s` throughput."""
    if modality == "text":
        mask = inputs.get("attention_mask")
        return int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())
    if modality == "vision":
        side = model_config.image_size // model_config.patch_size
        return int(inputs["pixel_values"].shape[0] * side * side)
    if modality == "graph":
        mask = inputs.get("node_mask")
        return int(mask.sum()) if mask is not None else int(inputs["node_features"].shape[:2].numel())
    if modality == "audio":
        features = inputs["input_features"]  # (B, T, F) log-mel frames
        per_clip = (features.shape[1] // model_config.patch_time_size) * (
            model_config.num_mel_bins // model_config.patch_frequency_size
        )
        return int(features.shape[0] * max(per_clip, 1))
    values = inputs["past_values"]  # (B, L, C)
    patches = (values.shape[1] - model_config.patch_length) // model_config.patch_stride + 1
    return int(values.shape[0] * values.shape[2] * max(patches, 1))


__all__ = [
    "OBJECTIVES",
    "UNIT_NAMES",
    "Objective",
    "build_model",
    "build_model_config",
    "count_units",
    "forward_input_names",
    "load_tokenizer",
]
