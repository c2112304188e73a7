"""Frozen features of a `datasets.Dataset` from an mmfm encoder or the composite `MMFMModel`.

Rows are read in batches, turned into the processor's input for the modality (the row adapters below,
one per modality, following the demo corpus columns documented in `mmfm.data.demo`), and encoded in eval
mode without gradients. An encoder gives its `pooler_output` (B, D); an `MMFMModel` gives its projected
embedding `get_features(modality, normalize=False)` (B, P), left unnormalised so every probe can choose.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm

from ..modalities import get_modality, modality_of_config

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "caption", "transcript")


def input_columns(dataset: Dataset, modality: str, text_column: str = "text") -> list[str]:
    """The dataset columns feature extraction reads for `modality` (required and optional ones present).

    Raises:
        ValueError: unknown modality, or a required column is missing (the message names it).
    """
    spec = get_modality(modality)
    required, optional = spec.columns(text_column)
    missing = [column for column in required if column not in dataset.column_names]
    if missing:
        hint = ""
        if spec.tokenized:
            present = [c for c in TEXT_COLUMNS if c in dataset.column_names]
            hint = f" Pass `text_column=` one of {present}." if present else ""
        raise ValueError(
            f"The dataset has no column(s) {missing} needed for {modality} features; its columns are "
            f"{dataset.column_names}.{hint}"
        )
    return required + [c for c in optional if c in dataset.column_names]


# ---------------------------------------------------------------------------------------------- model side


def _encode_function(model: torch.nn.Module, modality: str) -> tuple[Callable[..., torch.Tensor], set[str]]:
    """`(encode, input_names)`: a call from processor outputs to (B, D) features, and the input names the
    encoder's `forward` declares (other processor outputs, e.g. time-series `loc`/`scale`, are dropped)."""
    if hasattr(model, "get_features") and hasattr(model, "encoders"):
        if modality not in model.encoders:
            raise ValueError(f"This MMFMModel has no {modality} encoder; it encodes {tuple(model.encoders)}.")
        encoder = model.encoders[modality]

        def encode(**inputs):
            return model.get_features(modality, normalize=False, **inputs)

    else:
        try:
            model_modality = modality_of_config(model.config)
        except (AttributeError, ValueError):
            model_modality = None  # not an mmfm encoder: trust the caller
        if model_modality is not None and model_modality != modality:
            raise ValueError(
                f"The model is a {model_modality} encoder ({type(model).__name__}) but `modality` is {modality!r}."
            )
        encoder = model

        def encode(**inputs):
            return model(**inputs, return_dict=True).pooler_output

    parameters = inspect.signature(encoder.forward).parameters.values()
    names = {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return encode, names


def _model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


# ---------------------------------------------------------------------------------------------- extraction


def process_rows(
    processor: Any,
    dataset: Dataset,
    modality: str,
    start: int,
    batch_size: int,
    text_column: str,
    processor_kwargs: Mapping[str, Any] | None,
) -> Mapping[str, Any]:
    """Rows `start:start + batch_size` through the row adapter and the processor -> the encoder inputs."""
    items, kwargs = get_modality(modality).row_adapter(dataset[start : start + batch_size], text_column)
    kwargs = {**kwargs, **(processor_kwargs or {})}
    try:
        return processor(**{modality: items, f"{modality}_kwargs": kwargs})[modality]
    except (ValueError, TypeError) as err:
        # The processor numbers items within the batch; say which dataset rows they are.
        stop = min(start + batch_size, len(dataset))
        error_class = TypeError if isinstance(err, TypeError) else ValueError
        raise error_class(
            f"Dataset rows {start}..{stop - 1} (item i of the message is row {start} + i): {err}"
        ) from err


def extract_features(
    model: torch.nn.Module,
    processor: Any,
    dataset: Dataset,
    modality: str,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = True,
    text_column: str = "text",
    processor_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Encode every row of `dataset` and return the features in row order.

    Args:
        model: an mmfm encoder (features = its `pooler_output`) or an `MMFMModel` (features =
            `get_features(modality, normalize=False)`, the projected embedding before normalisation).
        processor: an `MMFMProcessor` with a processor for `modality`.
        dataset: rows in the demo corpus format: text `text_column`; vision `image`; audio `audio` (+
            `sampling_rate`); graph `num_nodes`, `edge_index` (+ `node_features`); timeseries `past_values`.
        modality: one of "text", "vision", "audio", "graph", "timeseries".
        batch_size: rows encoded at once.
        device: where to run; default the model's device. When given, the model is moved there.
        progress: show a tqdm progress bar.
        text_column: the text column for modality "text" (e.g. "caption" or "transcript").
        processor_kwargs: options for the modality's processor, passed as `<modality>_kwargs` (e.g.
            `{"truncation": True}` for long texts or series, which the processors otherwise refuse).

    Returns:
        (N, D) float32 array, N = `len(dataset)`; D is the encoder width (P for an `MMFMModel`).

    Raises:
        ValueError: unknown modality, a needed column missing, an empty dataset, or a model that does not
            encode `modality`.
    """
    columns = input_columns(dataset, modality, text_column)
    if len(dataset) == 0:
        raise ValueError("The dataset has no rows: there is nothing to extract features from.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
    encode, input_names = _encode_function(model, modality)
    if modality not in getattr(processor, "modalities", (modality,)):
        raise ValueError(
            f"The processor has no {modality} processor; it processes {processor.modalities}. Build it with "
            "`MMFMProcessor.from_model_config(model.config)`."
        )
    if device is not None:
        model.to(device)
    device = _model_device(model)
    rows_only = dataset.select_columns(columns)  # so unused columns (e.g. images) are not decoded
    was_training = model.training
    model.eval()
    outputs, dropped = [], set()
    try:
        with torch.no_grad():
            for start in tqdm(
                range(0, len(dataset), batch_size),
                desc=f"{modality} features",
                unit="batch",
                disable=not progress,
            ):
                inputs = process_rows(
                    processor, rows_only, modality, start, batch_size, text_column, processor_kwargs
                )
                dropped.update(k for k in inputs if k not in input_names)
                inputs = {k: _to_device(v, device) for k, v in inputs.items() if k in input_names}
                outputs.append(encode(**inputs).float().cpu())
    finally:
        model.train(was_training)
    if dropped:
        logger.info(
            "Processor outputs %s are not inputs of the %s encoder and were not passed.",
            sorted(dropped),
            modality,
        )
    features = torch.cat(outputs).numpy()
    logger.info("Extracted %s features %s from %d rows.", modality, features.shape, len(dataset))
    return features


__all__ = ["TEXT_COLUMNS", "extract_features", "input_columns"]
