"""Zero-shot classification through the shared space: class names become text embeddings (CLIP, Radford et
al. 2021), and each example takes the class whose text embedding is most similar to its own.

    classes = zero_shot_classifier(model, processor, ["circle", "square", "triangle"], modality="vision")
    images = embed_rows(model, processor, shapes_test, "vision")
    zero_shot_accuracy(images, shapes_test["label"], classes)    # {"accuracy", "chance", ...}

Prompt ensembling (CLIP section 3.1.4): each class name fills every template ("a photo of {}."), the
template embeddings are averaged and the mean re-normalised, which is steadier than any one prompt.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._checks import check_features, check_labels
from .embeddings import embed_rows, is_shared_space_model
from .retrieval import _unit_rows, ranked_ahead

logger = logging.getLogger(__name__)

# The placeholder each template holds; it is replaced (not `str.format`ted), so other braces are literal.
PLACEHOLDER = "{}"
DEFAULT_TEMPLATES: Mapping[str, tuple[str, ...]] = {
    "text": ("{}",),
    "vision": ("a photo of {}.", "an image of {}.", "a picture of {}."),
    "audio": ("the sound of {}.", "someone saying {}.", "{}"),
    "graph": ("the molecule {}.", "{}"),
    "timeseries": ("a {} series.", "{}"),
}
TOP_K = 5  # top-5 accuracy is reported when there are more classes than this


def default_templates(modality: str) -> tuple[str, ...]:
    """The prompt templates used for classes of `modality` when none are given."""
    if modality not in DEFAULT_TEMPLATES:
        raise ValueError(f"No default templates for modality {modality!r}; pass `templates=`.")
    return DEFAULT_TEMPLATES[modality]


def _check_names(class_names: Any) -> list[str]:
    if (
        isinstance(class_names, str)
        or not isinstance(class_names, Sequence | np.ndarray)
        or not len(class_names)
    ):
        raise ValueError(f"`class_names` must be a non-empty list of strings, got {class_names!r}.")
    names = list(class_names)
    bad = [i for i, name in enumerate(names) if not isinstance(name, str) or not name.strip()]
    if bad:
        raise ValueError(
            f"`class_names[{bad[0]}]` is {names[bad[0]]!r}: class names must be non-empty strings."
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(
                f"`class_names` has {name!r} twice (items {seen[name]} and {i}): the two classes would get the "
                "same text embedding and could not be told apart."
            )
        seen[name] = i
    return names


def _check_templates(templates: Any) -> list[str]:
    if isinstance(templates, str):
        templates = [templates]
    if not isinstance(templates, Sequence) or not len(templates):
        raise ValueError(f"`templates` must be a non-empty list of strings, got {templates!r}.")
    bad = [t for t in templates if not isinstance(t, str) or PLACEHOLDER not in t]
    if bad:
        raise ValueError(
            f"Every template must be a string holding the class-name placeholder {PLACEHOLDER!r} (e.g. "
            f"'a photo of {{}}.'), got {bad[0]!r}."
        )
    return list(dict.fromkeys(templates))


def zero_shot_classifier(
    model: torch.nn.Module,
    processor: Any,
    class_names: Sequence[str],
    templates: Sequence[str] | None = None,
    modality: str = "vision",
    batch_size: int = 64,
    processor_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Text embeddings of the classes, one unit row per class, from prompt ensembling.

    Args:
        model: an `MMFMModel` with a text encoder.
        processor: an `MMFMProcessor` with a tokenizer (`text`).
        class_names: the C class names, in class-id order (e.g. a `ClassLabel`'s `names`).
        templates: prompts holding "{}", filled with each class name; default `DEFAULT_TEMPLATES[modality]`.
        modality: the modality of the examples to classify; picks the default templates.
        batch_size: prompts encoded at once.
        processor_kwargs: tokenizer options (e.g. `{"truncation": True}`).

    Returns:
        (C, P) float32: for class c, the mean of the embeddings of every template filled with
        `class_names[c]`, re-normalised to unit length.

    Raises:
        ValueError: no text encoder, empty or duplicated class names, templates without "{}".
    """
    if not is_shared_space_model(model):
        raise TypeError(
            f"Zero-shot classification needs an MMFMModel (a shared text/{modality} space), got "
            f"{type(model).__name__}."
        )
    if "text" not in model.encoders:
        raise ValueError(
            f"Zero-shot classification embeds class names as text, but this MMFMModel has no text encoder; it "
            f"encodes {tuple(model.encoders)}."
        )
    names = _check_names(class_names)
    templates = _check_templates(default_templates(modality) if templates is None else templates)
    prompts = [template.replace(PLACEHOLDER, name) for name in names for template in templates]
    embeddings = embed_rows(
        model, processor, prompts, "text", batch_size=batch_size, processor_kwargs=processor_kwargs
    )
    embeddings = torch.from_numpy(embeddings).reshape(len(names), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(embeddings, dim=-1).numpy()


def zero_shot_accuracy(
    embeddings: Any,
    labels: Any,
    class_embeddings: Any,
    class_ids: Any = None,
) -> dict[str, Any]:
    """Accuracy of assigning each example the class of most similar embedding (cosine similarity).

    Args:
        embeddings: (N, P) example embeddings.
        labels: (N,) the true class of each example, as values of `class_ids`.
        class_embeddings: (C, P) one embedding per class (`zero_shot_classifier`).
        class_ids: (C,) the label value row c of `class_embeddings` stands for; default 0..C-1 (the ids of a
            `ClassLabel` whose `names` built the classifier).

    Returns:
        `{"accuracy", "chance": 1 / C, "num_classes": C, "num_examples": N}` and, when C > 5,
        `"top5_accuracy"` and `"top5_chance": 5 / C`. Ties between classes (similarities within
        `TIE_TOLERANCE`) go to the lower class index.

    Raises:
        ValueError: shapes that do not match, NaN/infinite values, duplicated class ids, or a label that is
            none of the class ids (the message lists them).
    """
    examples = check_features(embeddings, "embeddings")
    classes = check_features(class_embeddings, "class_embeddings")
    if classes.shape[1] != examples.shape[1]:
        raise ValueError(
            f"`embeddings` have {examples.shape[1]} dimensions but `class_embeddings` have {classes.shape[1]}: "
            "both must come from the same model's shared space."
        )
    num_classes, num_examples = classes.shape[0], examples.shape[0]
    labels = check_labels(labels, num_examples, "labels")
    ids = np.arange(num_classes) if class_ids is None else check_labels(class_ids, num_classes, "class_ids")
    lookup = {value: c for c, value in enumerate(ids.tolist())}
    if len(lookup) != num_classes:
        raise ValueError("`class_ids` must be distinct: each row of `class_embeddings` is one class.")
    unknown = sorted({value for value in labels.tolist() if value not in lookup}, key=str)
    if unknown:
        raise ValueError(
            f"Labels {unknown[:10]} are not among the {num_classes} class ids {ids.tolist()[:20]}: every "
            "example's class needs a class embedding (pass `class_ids` when the labels are not 0..C-1)."
        )
    targets = torch.as_tensor([lookup[value] for value in labels.tolist()], dtype=torch.long)
    similarity = _unit_rows(examples) @ _unit_rows(classes).T
    true = similarity.gather(1, targets[:, None])
    # Classes ranked before the true one (0: it is predicted); ties, within `TIE_TOLERANCE`, to the lower index.
    rank = ranked_ahead(similarity, true, targets).sum(dim=1)
    report: dict[str, Any] = {
        "accuracy": float((rank == 0).double().mean()),
        "chance": 1.0 / num_classes,
        "num_classes": int(num_classes),
        "num_examples": int(num_examples),
    }
    if num_classes > TOP_K:
        report[f"top{TOP_K}_accuracy"] = float((rank < TOP_K).double().mean())
        report[f"top{TOP_K}_chance"] = TOP_K / num_classes
    return report


__all__ = ["DEFAULT_TEMPLATES", "default_templates", "zero_shot_accuracy", "zero_shot_classifier"]
