"""`ModalitySpec` and the registry of specs, keyed by modality token and discovered by module name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from ..models import MODALITIES

RowAdapter = Callable[[dict[str, list], str], tuple[list, dict]]


@dataclass(frozen=True)
class ModalitySpec:
    """Everything the data pipeline, the recipes and the evaluation need about one modality.

    Attributes:
        name: the modality token (`text`, `vision`, ...): folder, batch key, sub-config key.
        encoder_class: the encoder (its `config_class` is the modality's configuration).
        processor_class: the processor that turns raw items into encoder inputs (text: the tokenizer base).
        build_processor: `(encoder config, tokenizer) -> processor` whose settings match the encoder.
        required_columns, optional_columns: dataset columns a row of this modality has; text reads the
            run's `text_column` instead of `required_columns[0]`.
        row_adapter: `(columns of a batch of rows, text_column) -> (items, processor kwargs)`.
        unit: what throughput counts (`tokens`, `patches`, `nodes`).
        count_units: `(encoder inputs of a batch, encoder config) -> units` in it (padding excluded).
        default_objective: the objective `AutoModelForPreTraining` builds for a bare encoder.
        tokenized: rows are text for a tokenizer (packed and corrupted by the objective's collator).
        fields_from_data: `(first row) -> encoder config fields the data decides` (graph: feature width).
        file_columns: columns that may hold file paths, with the `datasets` feature that decodes them
            (vision: `image` -> `datasets.Image()`); relative paths are read from the data file's folder.
        folder_builder: the `datasets` folder builder for a folder of raw files (`imagefolder`), and
            `folder_extensions` the file suffixes that make a folder such a source.
    """

    name: str
    encoder_class: type[PreTrainedModel]
    processor_class: type
    build_processor: Callable[[PreTrainedConfig, Any], Any]
    required_columns: tuple[str, ...]
    row_adapter: RowAdapter
    unit: str
    count_units: Callable[[Mapping[str, torch.Tensor], PreTrainedConfig], int]
    default_objective: str
    optional_columns: tuple[str, ...] = ()
    tokenized: bool = False
    fields_from_data: Callable[[dict], dict[str, Any]] = lambda row: {}
    file_columns: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    folder_builder: str | None = None
    folder_extensions: tuple[str, ...] = ()

    @property
    def config_class(self) -> type[PreTrainedConfig]:
        return self.encoder_class.config_class

    def columns(self, text_column: str = "text") -> tuple[list[str], list[str]]:
        """(required, optional) columns a task of this modality reads."""
        required = [text_column] if self.tokenized else list(self.required_columns)
        return required, list(self.optional_columns)


def count_real(inputs: Mapping[str, torch.Tensor], input_name: str) -> int:
    """Real positions of a padded (B, L, ...) batch: the sum of its `attention_mask`, or every position of
    `inputs[input_name]` when there is none (text tokens, graph nodes)."""
    mask = inputs.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(inputs[input_name].shape[:2].numel())


@cache
def modality_specs() -> dict[str, ModalitySpec]:
    """Every modality's spec, in the canonical order of the model folder (`mmfm_modalities.py`)."""
    specs = {}
    for modality in MODALITIES:
        try:
            module = importlib.import_module(f"{__package__}.{modality}")
        except ModuleNotFoundError as err:
            if err.name != f"{__package__}.{modality}":
                raise
            raise ImportError(
                f"The model folder lists modality {modality!r} but mmfm/modalities/{modality}.py (its "
                "ModalitySpec) does not exist."
            ) from err
        spec = module.SPEC
        if spec.name != modality or spec.config_class.modality != modality:
            raise ImportError(f"mmfm/modalities/{modality}.py describes {spec.name!r}, not {modality!r}.")
        specs[modality] = spec
    return specs


def get_modality(name: str) -> ModalitySpec:
    """The spec of modality `name`; `ValueError` listing the modalities otherwise."""
    specs = modality_specs()
    if name not in specs:
        raise ValueError(f"Unknown modality {name!r}; modalities are {tuple(specs)}.")
    return specs[name]


def modality_of_config(config: PreTrainedConfig) -> str:
    """The modality of an encoder configuration (by model type); `ValueError` for other configurations."""
    for name, spec in modality_specs().items():
        if spec.config_class.model_type == getattr(config, "model_type", None):
            return name
    raise ValueError(f"No mmfm modality has model type {getattr(config, 'model_type', None)!r}.")


__all__ = ["ModalitySpec", "count_real", "get_modality", "modality_of_config", "modality_specs"]
