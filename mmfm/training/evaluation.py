"""Evaluations at the end of a run: each task's exported encoder, reloaded with `AutoModel` exactly as a
user would load it, probed with frozen features on labelled data (`tasks.<name>.evaluation`, or the
objective's default evaluations): demo subsets, or local data such as a folder of class subfolders."""

from __future__ import annotations

import logging
from typing import Any

import torch
from accelerate import Accelerator
from transformers import AutoModel

from ..data import keep_values, load_labelled_splits
from ..evaluation import evaluate_encoder
from ..evaluation.harness import KNN_DEFAULTS
from ..processing import MMFMProcessor
from .setup import Task

logger = logging.getLogger(__name__)


def evaluate_exports(
    accelerator: Accelerator, tasks: dict[str, Task], exported: dict[str, str]
) -> dict[str, Any]:
    """`{task: {"<subset>/<label_column>": {probe: metrics}}}` for the tasks that ask for evaluations.

    Runs on the main process (the others wait): the exported folders hold consolidated weights, so no
    process group is needed. DeepSpeed's ZeRO-3 hook into `from_pretrained` is switched off first, since
    loading under it on one process would wait for the others forever.
    """
    if not any(task.section.evaluations() or _binding_on_demo(task) for task in tasks.values()):
        return {}
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    results: dict[str, Any] = {}
    if accelerator.is_main_process:
        for name, task in tasks.items():
            if _binding_on_demo(task):
                results[name] = _evaluate_binding_task(task, exported[name], accelerator)
            elif task.section.evaluations():
                results[name] = _evaluate_task(task, exported[name], accelerator)
    accelerator.wait_for_everyone()
    return results


def _evaluate_task(task: Task, folder: str, accelerator: Accelerator) -> dict[str, Any]:
    spec = task.objective.spec
    encoder = AutoModel.from_pretrained(folder).to(accelerator.device).eval()
    processor = MMFMProcessor.from_pretrained(folder)
    options = dict(task.objective.processor_kwargs)
    if spec.tokenized:
        options.update(truncation=True, max_length=task.section.data.max_length)
    results = {}
    for i, evaluation in enumerate(task.section.evaluations()):
        where = f"tasks.{task.name}.evaluation[{i}]"
        # Seed 0 for a local source's 80/20 division: every run of a config scores the same rows.
        train, test = load_labelled_splits(
            evaluation.source, spec, where, evaluation.label_column, evaluation.subset, seed=0
        )
        for column, values in evaluation.include.items():
            train, test = (keep_values(split, column, values, where) for split in (train, test))
        # A small local training split (fewer rows than kNN's k) still gets a kNN probe, over all its rows.
        knn = {"knn": {"k": min(KNN_DEFAULTS["k"], len(train))}} if "knn" in evaluation.probes else {}
        report = evaluate_encoder(
            encoder, processor, spec.name, train, test, label_column=evaluation.label_column,
            tasks=evaluation.probes, progress=False, processor_kwargs=options, device=accelerator.device,
            text_column=task.section.data.text_column, **knn,  # text_column is read for text only
        )  # fmt: skip
        key = f"{evaluation.subset if evaluation.source == 'demo' else evaluation.source}/{evaluation.label_column}"
        results[key] = {probe: report[probe] for probe in evaluation.probes}
        logger.info("Evaluation of %s on %s: %s", task.name, key, _summary(results[key]))
    return results


# Zero-shot classification on the labelled paired demo subsets: (modality, class names (None: the label
# column's), prompt templates shaped like the subset's captions).
ZERO_SHOT_DEMO = {
    "digit_captions": ("vision", ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
                       ("a handwritten digit {}",)),
    "shapes_captions": ("vision", None, ("a small {}", "a large {}")),
    "spoken_digit_transcripts": ("audio", None, ("{}",)),
    "spoken_word_transcripts": ("audio", None, ("{}",)),
    "series_captions": ("timeseries", None, ("a {} series", "a noisy {} series")),
}  # fmt: skip
# Rows per evaluated set: retrieval over all test rows of a small demo subset, capped for larger ones.
BINDING_MAX_SAMPLES = 500


def _binding_on_demo(task: Task) -> bool:
    return task.section.binds and task.section.data.source == "demo" and task.section.evaluation != []


def _evaluate_binding_task(task: Task, folder: str, accelerator: Accelerator) -> dict[str, Any]:
    """Retrieval on the test split of every paired subset the task trained on, zero-shot classification on
    the labelled ones, and emergent audio<->image retrieval (spoken digits and digit images, never paired in
    training) when the model has both towers; each next to chance and to the same model at random
    initialisation."""
    from ..data.paired import load_paired_demo
    from ..evaluation import EmergentSet, ZeroShotSet, evaluate_binding
    from .binding import _processor_options

    model = AutoModel.from_pretrained(folder).to(accelerator.device).eval()
    processor = MMFMProcessor.from_pretrained(folder)
    modalities = tuple(model.config.modalities)
    subsets = task.section.data.subsets
    pairs = {name: load_paired_demo(name, "test") for name in subsets}
    zero_shot = {
        name: ZeroShotSet(pairs[name], modality, "label", class_names, templates)
        for name, (modality, class_names, templates) in ZERO_SHOT_DEMO.items()
        if name in pairs and modality in modalities and "text" in modalities
    }
    emergent = {}
    if {"audio", "vision"} <= set(modalities):
        both = load_paired_demo("spoken_digit_images", "test")
        emergent["spoken_digits_to_digit_images"] = EmergentSet(both, "audio", both, "vision")
    torch.manual_seed(0)
    random_init = type(model)(model.config).to(accelerator.device).eval()
    report = evaluate_binding(
        model, processor, pairs=pairs, zero_shot=zero_shot, emergent=emergent, random_init_model=random_init,
        max_samples=BINDING_MAX_SAMPLES, text_column=task.section.data.text_column,
        processor_kwargs={**_processor_options(modalities), "text": {"truncation": True,
                                                                      "max_length": task.section.data.max_length}},
    )  # fmt: skip
    for kind in ("retrieval", "zero_shot", "emergent"):
        for name, entry in report.get(kind, {}).items():
            logger.info("Binding evaluation of %s, %s %s: %s", task.name, kind, name, _binding_summary(entry))
    return report


def _binding_summary(entry: dict[str, Any]) -> str:
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


def _summary(report: dict[str, Any]) -> str:
    metric = {"knn": "accuracy", "linear_probe": "accuracy", "ridge": "r2"}
    return ", ".join(
        f"{probe} {metric[probe]} {values[metric[probe]]:.3f}" for probe, values in report.items()
    )


__all__ = ["evaluate_exports"]
