"""Evaluations at the end of a run: each task's exported encoder, reloaded with `AutoModel` exactly as a
user would load it, probed with frozen features on labelled demo subsets (`tasks.<name>.evaluation`)."""

from __future__ import annotations

import logging
from typing import Any

from accelerate import Accelerator
from transformers import AutoModel

from ..data.demo import load_demo_dataset
from ..evaluation import evaluate_encoder
from ..processing import MMFMProcessor
from .data import keep_values
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
    if not any(task.section.evaluation for task in tasks.values()):
        return {}
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    results: dict[str, Any] = {}
    if accelerator.is_main_process:
        for name, task in tasks.items():
            if task.section.evaluation:
                results[name] = _evaluate_task(task, exported[name], accelerator)
    accelerator.wait_for_everyone()
    return results


def _evaluate_task(task: Task, folder: str, accelerator: Accelerator) -> dict[str, Any]:
    modality = task.objective.modality
    encoder = AutoModel.from_pretrained(folder).to(accelerator.device).eval()
    processor = MMFMProcessor.from_pretrained(folder)
    options = dict(task.objective.processor_kwargs)
    if modality == "text":
        options.update(truncation=True, max_length=task.section.data.max_length)
    results = {}
    for evaluation in task.section.evaluation:
        data = load_demo_dataset(modality, evaluation.subset)
        train, test = data["train"], data["test"]
        for column, values in evaluation.include.items():
            where = f"tasks.{task.name}.evaluation"
            train, test = (keep_values(split, column, values, where) for split in (train, test))
        report = evaluate_encoder(
            encoder, processor, modality, train, test, label_column=evaluation.label_column,
            tasks=evaluation.probes, progress=False, processor_kwargs=options, device=accelerator.device,
            text_column=task.section.data.text_column,  # read for text only
        )  # fmt: skip
        key = f"{evaluation.subset}/{evaluation.label_column}"
        results[key] = {probe: report[probe] for probe in evaluation.probes}
        logger.info("Evaluation of %s on %s: %s", task.name, key, _summary(results[key]))
    return results


def _summary(report: dict[str, Any]) -> str:
    metric = {"knn": "accuracy", "linear_probe": "accuracy", "ridge": "r2"}
    return ", ".join(
        f"{probe} {metric[probe]} {values[metric[probe]]:.3f}" for probe, values in report.items()
    )


__all__ = ["evaluate_exports"]
