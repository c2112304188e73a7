"""Evaluations at the end of a run: each task's exported encoder, reloaded with `AutoModel` exactly as a
user would load it, probed with frozen features on labelled data (`tasks.<name>.evaluation`, or the
objective's default evaluations): demo subsets, or local data such as a folder of class subfolders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from transformers import AutoModel

from ..data import keep_values, load_labelled_splits
from ..evaluation import evaluate_encoder
from ..evaluation.forgetting import forgetting_report, markdown_table
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


def evaluate_continued(
    accelerator: Accelerator, tasks: dict[str, Task], exported: dict[str, str], evaluation: dict[str, Any],
    output_dir: Path,
) -> dict[str, Any]:
    """For tasks continued from a saved model (`model.init_from`): where it came from, and a forgetting report
    of the same probes on the starting model (before) and the exported one (after).

    Returns `{"init_from": {task: ModelSource.record()}, "forgetting": {task: forgetting_report(...)}}` (empty
    parts left out) on every process; the main process also writes `forgetting.md` to `output_dir`. Every
    process must call this (the base models are probed on the main process, the others wait).
    """
    continued = {name: task for name, task in tasks.items() if task.init_source is not None}
    if not continued:
        return {}
    result: dict[str, Any] = {"init_from": {name: task.init_source.record() for name, task in continued.items()}}
    probed = {name: task for name, task in continued.items() if evaluation.get(name)}
    if not probed:
        return result
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    reports: dict[str, Any] = {}
    if accelerator.is_main_process:
        tables = []
        for name, task in probed.items():
            # The exported processor for both models: only the encoder's weights differ between the columns.
            before = _evaluate_task(task, task.init_source.folder, accelerator, processor_folder=exported[name])
            reports[name] = forgetting_report(before, evaluation[name], _domains(task))
            table = markdown_table(reports[name], before=f"before ({task.init_source.value})", after="after")
            tables.append(f"## {name}\n\n{table}")
            logger.info("Forgetting of %s (probes before and after continued pretraining):\n%s", name, table)
        (output_dir / "forgetting.md").write_text(
            "# Continued pretraining: probes before and after\n\n" + "\n".join(tables)
        )
    accelerator.wait_for_everyone()
    result["forgetting"] = reports
    return result


def _domains(task: Task) -> dict[str, str]:
    """Evaluation key -> `new` when it probes the data the run continued on, else `original`."""
    data, domains = task.section.data, {}
    for evaluation in task.section.evaluations():
        key = _key(evaluation)
        trained = (
            evaluation.subset in data.subsets if evaluation.source == "demo" == data.source
            else evaluation.source == data.source
        )  # fmt: skip
        domains[key] = "new" if trained else "original"
    return domains


def _key(evaluation) -> str:
    return f"{evaluation.subset if evaluation.source == 'demo' else evaluation.source}/{evaluation.label_column}"


def _evaluate_task(
    task: Task, folder: str, accelerator: Accelerator, processor_folder: str | None = None
) -> dict[str, Any]:
    spec = task.objective.spec
    encoder = AutoModel.from_pretrained(folder).to(accelerator.device).eval()
    processor = MMFMProcessor.from_pretrained(processor_folder or folder)
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
        key = _key(evaluation)
        results[key] = {probe: report[probe] for probe in evaluation.probes}
        logger.info("Evaluation of %s on %s: %s", task.name, key, _summary(results[key]))
    return results


def _binding_on_demo(task: Task) -> bool:
    return task.section.binds and task.section.data.source == "demo" and task.section.evaluation != []


def _evaluate_binding_task(task: Task, folder: str, accelerator: Accelerator) -> dict[str, Any]:
    """Retrieval, zero-shot and emergent evaluation of the exported composite on the test splits of the
    paired demo subsets it trained on (`mmfm.evaluation.binding_demo`)."""
    from ..evaluation.binding_demo import evaluate_binding_export, summary

    data = task.section.data
    report = evaluate_binding_export(
        folder, data.subsets, accelerator.device, max_length=data.max_length, text_column=data.text_column
    )
    for kind in ("retrieval", "zero_shot", "emergent"):
        for name, entry in report.get(kind, {}).items():
            logger.info("Binding evaluation of %s, %s %s: %s", task.name, kind, name, summary(entry))
    return report


def _summary(report: dict[str, Any]) -> str:
    metric = {"knn": "accuracy", "linear_probe": "accuracy", "ridge": "r2"}
    return ", ".join(
        f"{probe} {metric[probe]} {values[metric[probe]]:.3f}" for probe, values in report.items()
    )


__all__ = ["evaluate_continued", "evaluate_exports"]
