"""How a task's tokenizer and model are built from the run config and the objective registry.

Everything objective- or modality-specific comes from `mmfm.objectives` and `mmfm.modalities`; this module
only applies the run's choices in order and refuses contradictions, naming both sides.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import torch
from transformers import AutoTokenizer, PreTrainedModel

from ..data.demo import load_demo_tokenizer
from ..objectives import get_objective
from .config import TaskSection, check_model_section, check_saved_model

logger = logging.getLogger(__name__)


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


def build_model_config(task: TaskSection, where: str, tokenizer=None, data_fields: dict | None = None):
    """The encoder config of a new model, in order: the preset, the fields the data decides, the objective's
    preferred encoder fields, `model.config`; then the objective's requirements, and its hyperparameters
    (its preset sizes, then `objective_config`) in `pretraining_config`.

    Raises:
        ValueError: a `model.config` key the modality's config does not have (the message lists them), a
            field that records pretraining, a value that contradicts the objective (both named), or an
            inconsistent value (the config's own checks).
    """
    check_model_section(task, where)
    objective = get_objective(task.objective)
    config_class = objective.spec.config_class
    fields = {
        **(data_fields or {}),
        **objective.encoder_defaults,
        **task.model.config,
        **objective.encoder_requirements,
    }
    if tokenizer is not None:
        fields.setdefault("vocab_size", len(tokenizer))
        fields.setdefault("pad_token_id", tokenizer.pad_token_id)
    sizes = objective.config_class.presets.get(task.model.preset, {})
    fields["pretraining_objective"] = objective.name
    fields["pretraining_config"] = {**sizes, **task.objective_config}
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
    objective = get_objective(task.objective)
    if task.model.init_from:
        check_saved_model(objective, task.model.init_from, where)
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


__all__ = [
    "build_model",
    "build_model_config",
    "forward_input_names",
    "load_tokenizer",
]
