"""How a task's tokenizer and model are built from the run config and the objective registry.

Everything objective- or modality-specific comes from `mmfm.objectives` and `mmfm.modalities`; this module
only applies the run's choices in order and refuses contradictions, naming both sides.
"""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ..data.demo import load_demo_tokenizer
from ..objectives import get_objective
from .config import ModelSection, TaskSection, check_model_section, check_saved_model, init_overrides
from .pretrained import resolve_model_source

logger = logging.getLogger(__name__)


def load_tokenizer(task: TaskSection, where: str):
    """The task's tokenizer: the one saved with `init_from` (a folder or a Hub id, see `mmfm.training.pretrained`),
    else `model.tokenizer` (`demo` or a folder)."""
    saved = task.model.init_from and resolve_model_source(task.model.init_from, f"{where}.model.init_from").folder
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
        value = task.model.init_from
        folder = resolve_model_source(value, f"{where}.model.init_from").folder
        check_saved_model(objective, folder, where, value=value)
        # Agreeing `model.config`/`objective_config` keys are fine, differing ones refused; dropout applies.
        overrides = init_overrides(task, AutoConfig.from_pretrained(folder), where)
        if task.model.preset != ModelSection.preset:
            logger.info(
                "%s.model.preset (%s) is not applied: the model continues from %s with its saved config.",
                where, task.model.preset, value,
            )  # fmt: skip
        # transformers only warns about weights that do not fit and starts them from random values; with
        # `ignore_mismatched_sizes` a wrong shape is reported like a missing key, so all three are refused here.
        model, loading_info = objective.model_class.from_pretrained(
            folder,
            attn_implementation=attn_implementation,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
            **overrides,
        )
        check_loaded_weights(model, loading_info, value, f"{where}.model.init_from")
        return model
    config = build_model_config(task, where, tokenizer, data_fields)
    return objective.model_class._from_config(config, attn_implementation=attn_implementation)


def check_loaded_weights(model: PreTrainedModel, loading_info: dict, folder: str, field: str) -> None:
    """Refuse a saved model whose weights do not fit its config (`from_pretrained`'s `loading_info`).

    Accepted: every weight loads, or the folder holds a bare encoder (an export, or an encoder never
    pretrained), whose objective heads (every weight outside the encoder, plus the encoder's
    objective-only tokens, which its class lists in `_keys_to_ignore_on_load_unexpected`) start fresh.

    Raises:
        ValueError: encoder weights missing, unexpected weights, weights of another shape, or only part of
            the heads saved; the message counts each kind with examples and says how to fix it.
    """
    prefix = f"{model.base_model_prefix}."
    optional = [re.compile(p) for p in type(model.base_model)._keys_to_ignore_on_load_unexpected or ()]

    def in_encoder(key: str) -> bool:
        return key.startswith(prefix) and not any(p.search(key) for p in optional)

    missing = set(loading_info["missing_keys"])
    heads = {key for key in model.state_dict() if not in_encoder(key)} - set(model._tied_weights_keys or {})
    missing_heads = missing - {key for key in missing if in_encoder(key)}
    problems = {
        "encoder weight(s) missing": sorted(key for key in missing if in_encoder(key)),
        "unexpected weight(s)": sorted(loading_info["unexpected_keys"]),
        "weight(s) of another shape": [
            f"{key} (saved {tuple(saved)}, model {tuple(expected)})"
            for key, saved, expected in sorted(loading_info["mismatched_keys"])
        ],
        # A bare encoder lacks every head weight; a checkpoint with only some of them is another model's.
        "head weight(s) missing while others were saved": (
            sorted(missing_heads) if missing_heads and missing_heads != heads else []
        ),
    }
    found = "; ".join(f"{len(keys)} {what} (e.g. {keys[:3]})" for what, keys in problems.items() if keys)
    if found:
        raise ValueError(
            f"`{field}` = {str(folder)!r}: its weights do not fit its config.json ({type(model.config).__name__}, "
            f"built as {type(model).__name__}): {found}. Loading it would start those weights from random "
            "values. Point init_from at the folder the weights were saved with (config.json and model.safetensors "
            "from the same `save_pretrained`), or leave init_from empty to start a new model."
        )
    if missing_heads:
        logger.info(
            f"`{field}` holds a bare encoder: the {len(missing_heads)} head weight(s) start from random values."
        )


def forward_input_names(model: torch.nn.Module) -> set[str]:
    """The named inputs of a model's `forward` (processor outputs such as time-series `loc`/`scale` that
    the model does not take are dropped before the call)."""
    parameters = inspect.signature(model.forward).parameters.values()
    return {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


__all__ = [
    "build_model",
    "build_model_config",
    "check_loaded_weights",
    "forward_input_names",
    "load_tokenizer",
]
