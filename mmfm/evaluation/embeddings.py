"""Shared-space embeddings of dataset rows from the composite `MMFMModel`, the input of retrieval and zero-shot.

    image_embeddings = embed_rows(model, processor, shapes, "vision")                # (N, P), unit rows
    text_embeddings = embed_rows(model, processor, ["a red circle", "a square"], "text")

Rows go through the same row adapters and processors as `extract_features` (batched, eval mode, no
gradients, on the model's device); the projected embedding `get_features(modality)` is L2-normalised, so a
dot product between two embeddings is their cosine similarity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from datasets import Dataset

from ..modalities import get_modality
from .features import extract_features


def is_shared_space_model(model: Any) -> bool:
    """Whether `model` embeds modalities into one shared space (an `MMFMModel`: `encoders` + `get_features`)."""
    return hasattr(model, "get_features") and hasattr(model, "encoders")


def as_dataset(rows: Any, modality: str, text_column: str = "text") -> Dataset:
    """A `Dataset` of `rows`: a `Dataset` as is, a dict of columns, a list of row dicts, or (text only) a
    list of strings, which becomes the `text_column` column."""
    if isinstance(rows, Dataset):
        return rows
    if isinstance(rows, Mapping):
        return Dataset.from_dict(dict(rows))
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        rows = list(rows)
        if rows and all(isinstance(row, str) for row in rows):
            if not get_modality(modality).tokenized:
                raise TypeError(f"A list of strings is text, but `modality` is {modality!r}.")
            return Dataset.from_dict({text_column: rows})
        if all(isinstance(row, Mapping) for row in rows):
            return Dataset.from_list([dict(row) for row in rows])
    raise TypeError(
        "`rows` must be a datasets.Dataset, a dict of columns, a list of row dicts or (text) a list of strings, "
        f"got {type(rows).__name__}."
    )


def embed_rows(
    model: torch.nn.Module,
    processor: Any,
    rows: Dataset | Mapping[str, list] | Sequence[Any],
    modality: str,
    batch_size: int = 64,
    text_column: str = "text",
    processor_kwargs: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """L2-normalised shared-space embeddings of `rows` of one modality.

    Args:
        model: an `MMFMModel` (any model with `encoders` and `get_features(modality, normalize, **inputs)`).
        processor: an `MMFMProcessor` with a processor for `modality`.
        rows: a `datasets.Dataset`, a dict of columns or a list of row dicts in the demo corpus format (see
            `extract_features`), or, for text, a list of strings.
        modality: the modality of the rows.
        batch_size: rows encoded at once.
        text_column: the text column for modality "text".
        processor_kwargs: options of the modality's processor (e.g. `{"truncation": True}`).
        progress: show a tqdm progress bar.

    Returns:
        (N, P) float32 array in row order, each row of unit L2 norm (P = `projection_dim`).

    Raises:
        TypeError: `model` is a single encoder (it has no shared space; use `extract_features`), or `rows`
            is of an unsupported type.
        ValueError: as `extract_features` (unknown modality, missing column, no rows, model without that
            modality's encoder).
    """
    if not is_shared_space_model(model):
        raise TypeError(
            f"`embed_rows` needs a model with a shared embedding space (an MMFMModel), got {type(model).__name__}; "
            "for the features of a single encoder use `extract_features`."
        )
    dataset = as_dataset(rows, modality, text_column)
    features = extract_features(
        model,
        processor,
        dataset,
        modality,
        batch_size=batch_size,
        progress=progress,
        text_column=text_column,
        processor_kwargs=processor_kwargs,
    )
    # `extract_features` gives `get_features(modality, normalize=False)`; this is `normalize=True`.
    return torch.nn.functional.normalize(torch.from_numpy(features), dim=-1).numpy()


__all__ = ["as_dataset", "embed_rows", "is_shared_space_model"]
