"""The binding evaluation of an exported `MMFMModel` on the paired demo corpus, end of run or standalone
(`python -m mmfm.evaluation`, see `mmfm/evaluation/__main__.py`).

Retrieval in both directions on the test split of every named paired subset, zero-shot classification on
the labelled ones (prompt templates shaped like their captions), and, when the model has audio and vision
towers, the emergent audio<->image retrieval of spoken digits and digit images (never paired in training);
every number next to the same model at random initialisation and to chance (`evaluate_binding`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModel

from ..data.paired import PAIRED_DEMO_SUBSETS, load_paired_demo
from ..processing import MMFMProcessor
from .binding import EmergentSet, ZeroShotSet, evaluate_binding

logger = logging.getLogger(__name__)

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Zero-shot classification on the labelled paired demo subsets: (modality, class names (None: the label
# column's), prompt templates shaped like the subset's captions). The molecules' classes (TPSA bins) have no
# caption a prompt could match; the UCR sets' classes do (`UCR_ZERO_SHOT`).
ZERO_SHOT_DEMO = {
    "digit_captions": ("vision", DIGITS, ("a handwritten digit {}",)),
    "shapes_captions": ("vision", None, ("a small {}", "a large {}")),
    "spoken_digit_transcripts": ("audio", None, ("{}",)),
    "spoken_word_transcripts": ("audio", None, ("{}",)),
    "series_captions": ("timeseries", None, ("a {} series", "a noisy {} series")),
}
# Univariate UCR sets of the demo corpus, classified zero-shot by their classes' own captions (e.g. "outline of a
# leaf of vine maple (Acer circinatum)") when a model binds time series to text.
UCR_ZERO_SHOT = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "OSULeaf")
# Rows per evaluated set: all test rows of a small demo subset, capped for larger ones.
MAX_SAMPLES = 500


def processor_options(modalities: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each non-text modality's processor options as its default objective sets them (e.g. truncate long
    series to the encoder's context)."""
    from ..modalities import get_modality
    from ..objectives import get_objective

    options = {m: dict(get_objective(get_modality(m).default_objective).processor_kwargs) for m in modalities}
    return {m: o for m, o in options.items() if o and not get_modality(m).tokenized}


def evaluate_binding_export(
    folder: str, subsets: Sequence[str], device: str | torch.device = "cpu", max_length: int = 64,
    text_column: str = "text", output_path: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Load the `MMFMModel` saved in `folder` (and its processor) and evaluate it on paired demo `subsets`.

    Raises:
        ValueError: an unknown subset (the valid ones listed) or a model without a text tower.
    """
    unknown = [s for s in subsets if s not in PAIRED_DEMO_SUBSETS]
    if unknown:
        raise ValueError(f"Unknown paired demo subset(s) {unknown}; valid: {sorted(PAIRED_DEMO_SUBSETS)}.")
    model = AutoModel.from_pretrained(folder).to(device).eval()
    processor = MMFMProcessor.from_pretrained(folder)
    modalities = tuple(model.config.modalities)
    pairs = {name: load_paired_demo(name, "test") for name in subsets}
    zero_shot = {
        name: ZeroShotSet(pairs[name], modality, "label", class_names, templates)
        for name, (modality, class_names, templates) in ZERO_SHOT_DEMO.items()
        if name in pairs and modality in modalities and "text" in modalities
    }
    if {"text", "timeseries"} <= set(modalities):
        zero_shot.update(_ucr_zero_shot_sets())
    emergent = {}
    if {"audio", "vision"} <= set(modalities):
        both = load_paired_demo("spoken_digit_images", "test")
        emergent["spoken_digits_to_digit_images"] = EmergentSet(both, "audio", both, "vision")
    torch.manual_seed(0)
    random_init = type(model)(model.config).to(device).eval()
    if "text" in modalities:  # never longer than the text tower's positions
        max_length = min(max_length, model.config.text_config.max_position_embeddings)
    options = {**processor_options(modalities), "text": {"truncation": True, "max_length": max_length}}
    return evaluate_binding(
        model, processor, pairs=pairs, zero_shot=zero_shot, emergent=emergent, random_init_model=random_init,
        max_samples=MAX_SAMPLES, text_column=text_column, processor_kwargs=options, output_path=output_path,
    )  # fmt: skip


def _ucr_zero_shot_sets() -> dict[str, ZeroShotSet]:
    """One zero-shot set per univariate UCR set: its test rows, its classes named by their captions."""
    from ..data.demo import load_demo_dataset

    test = load_demo_dataset("timeseries", "ucr")["test"]
    sets = {}
    for name in UCR_ZERO_SHOT:
        rows = test.select([i for i, dataset in enumerate(test["dataset"]) if dataset == name])
        if not len(rows):
            continue
        captions = sorted(set(rows["caption"]), key=list(rows["caption"]).index)
        sets[f"ucr/{name}"] = ZeroShotSet(rows, "timeseries", "caption", captions, ("{}",))
    return sets


def summary(entry: dict[str, Any]) -> str:
    """`recall@1 0.420 (random init 0.050, chance 0.050), ...` of one report entry (cells one level deep or
    under a retrieval direction)."""
    cells = {}
    for key, value in entry.items():
        if isinstance(value, dict) and "model" in value:
            cells[key] = value
        elif isinstance(value, dict):
            cells.update({f"{key} {k}": v for k, v in value.items() if isinstance(v, dict) and "model" in v})
    return ", ".join(
        f"{name} {cell['model']:.3f} (random init {cell.get('random_init', float('nan')):.3f}, "
        f"chance {cell['chance']:.3f})"
        for name, cell in cells.items()
    )


__all__ = ["ZERO_SHOT_DEMO", "evaluate_binding_export", "processor_options", "summary"]
