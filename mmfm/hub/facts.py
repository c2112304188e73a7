"""What a model card says about a published folder, read from its files: modalities, objective, pipeline tag,
datasets, base model, evaluation results (`EvalResult`s for the card's `model-index`) and hyperparameters.

Pure functions of a `PublishSource`; `mmfm.hub.card` lays them out.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..models import MODALITIES
from .source import PublishSource

# The pipeline of a model's head, by the end of its architecture's name; a classification head's pipeline
# depends on the modality (`CLASSIFICATION_PIPELINES`).
HEAD_PIPELINES = {
    "ForMaskedLM": "fill-mask",
    "ForCausalLM": "text-generation",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
    "ForImageClassification": "image-classification",
    "ForAudioClassification": "audio-classification",
    "ForNextPatchPrediction": "time-series-forecasting",
    "ForPrediction": "time-series-forecasting",
}
CLASSIFICATION_PIPELINES = {
    "text": "text-classification",
    "vision": "image-classification",
    "audio": "audio-classification",
    "graph": "graph-ml",
}
# Frozen encoders (and pretraining models, whose `AutoModel` is the encoder): what their features serve.
FEATURE_PIPELINES = {"vision": "image-feature-extraction", "graph": "graph-ml"}
# PEFT's task types, for an adapter whose base model is not a local folder.
ADAPTER_PIPELINES = {
    "FEATURE_EXTRACTION": "feature-extraction",
    "SEQ_CLS": "text-classification",
    "TOKEN_CLS": "token-classification",
    "CAUSAL_LM": "text-generation",
    "QUESTION_ANS": "question-answering",
}
BINDING_DESCRIPTIONS = {
    "clip": "CLIP: a symmetric contrastive (InfoNCE) loss binds the towers' embeddings into one space",
    "siglip": "SigLIP: a pairwise sigmoid loss binds the towers' embeddings into one space",
}
DEMO_DATASET_PREFIX = "mmfm-demo"
# Zero-shot classification pipelines by the classified modality (model-index task types).
ZERO_SHOT_TASKS = {"vision": "zero-shot-image-classification", "audio": "zero-shot-audio-classification"}


# ---------------------------------------------------------------------------------------------- the model


def modalities(config: dict[str, Any]) -> list[str]:
    """The modalities a saved config encodes: `mmfm_<m>` -> [m]; the composite `mmfm` -> its towers."""
    model_type = str(config.get("model_type") or "")
    if model_type == "mmfm":
        return [m for m in MODALITIES if config.get(f"{m}_config")]
    suffix = model_type.removeprefix("mmfm_")
    return [suffix] if model_type.startswith("mmfm_") and suffix in MODALITIES else []


def architecture(config: dict[str, Any]) -> str | None:
    names = config.get("architectures") or []
    return names[0] if names else None


def objective(source: PublishSource) -> str | None:
    """The training objective: the run's `tasks.<task>.objective`, else what the saved config records (not for
    an adapter, whose config is its base model's)."""
    if source.adapter is not None:
        return source.task_section.get("objective")
    return (
        source.task_section.get("objective")
        or source.config.get("pretraining_objective")
        or (source.config.get("loss_type") if source.config.get("model_type") == "mmfm" else None)
    )


def objective_description(name: str | None) -> str | None:
    if name is None:
        return None
    if name in BINDING_DESCRIPTIONS:
        return BINDING_DESCRIPTIONS[name]
    from ..objectives import objectives

    found = objectives().get(name)
    return found.description if found is not None else None


def pipeline_tag(source: PublishSource) -> str | None:
    """The Hub pipeline of the published model (None when nothing fits).

    A text-image composite answers zero-shot image classification; a head answers its task
    (`HEAD_PIPELINES`, classification by modality); an encoder or a pretraining model (which `AutoModel` loads
    as its encoder) extracts features. An adapter takes its base model's, else its PEFT task type's.
    """
    config, found = source.config, modalities(source.config)
    if source.adapter is not None and not config:
        return ADAPTER_PIPELINES.get(str(source.adapter.get("task_type") or ""))
    name = architecture(config) or ""
    if config.get("model_type") == "mmfm":
        return "zero-shot-image-classification" if {"text", "vision"} <= set(found) else "feature-extraction"
    for ending, tag in HEAD_PIPELINES.items():
        if name.endswith(ending):
            return tag
    if name.endswith("ForSequenceClassification"):
        return CLASSIFICATION_PIPELINES.get(found[0]) if found else None
    return FEATURE_PIPELINES.get(found[0], "feature-extraction") if found else None


def count_parameters(folder: Path) -> int | None:
    """Parameters in `model.safetensors` (or an adapter's weights), read from the file header only."""
    for name in ("model.safetensors", "adapter_model.safetensors"):
        path = folder / name
        if path.is_file():
            with open(path, "rb") as file:
                (length,) = struct.unpack("<Q", file.read(8))
                header = json.loads(file.read(length))
            total = 0
            for key, entry in header.items():
                if key != "__metadata__":
                    count = 1
                    for size in entry["shape"]:
                        count *= size
                    total += count
            return total
    return None


def base_model(source: PublishSource, override: str | None = None) -> str | None:
    """The model this one was trained from: `override`, an adapter's base, or the run's `init_from`."""
    if override:
        return override
    if source.adapter is not None and source.adapter.get("base_model_name_or_path"):
        return str(source.adapter["base_model_name_or_path"])
    found = (source.task_section.get("model") or {}).get("init_from")
    found = str(found) if found else _find_key(source.run_config or {}, ("init_from", "base_model"))
    if found and "@" in found and not Path(found).expanduser().exists():
        found = found.split("@")[0]  # `user/name@revision`: the card names the repository
    return found


def _find_key(tree: Any, names: tuple[str, ...]) -> str | None:
    """The first non-empty value of a key in `names` anywhere in `tree` (run configs of other recipes)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in names and isinstance(value, str) and value:
                return value
            found = _find_key(value, names)
            if found:
                return found
    elif isinstance(tree, list):
        for value in tree:
            found = _find_key(value, names)
            if found:
                return found
    return None


def is_hub_id(name: str) -> bool:
    """Whether `name` reads as a Hub repository id rather than a local folder."""
    if Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- the data


def training_data(source: PublishSource) -> list[dict[str, str]]:
    """`[{"name", "kind": "demo"|"local", "description"}]` of the sources the task trained on."""
    data = source.data_section
    if not data:
        return []
    if data.get("source") == "demo":
        subsets = data.get("subsets") or ([data["subset"]] if data.get("subset") else [])
        return [{"name": s, "kind": "demo", "description": _demo_description(s)} for s in subsets]
    return [{"name": Path(str(data.get("source"))).name, "kind": "local", "description": "local data"}]


def dataset_ids(source: PublishSource) -> list[str]:
    """The card's `datasets`: demo subsets as `mmfm-demo/<subset>` (local files are named in the text only)."""
    return [f"{DEMO_DATASET_PREFIX}/{d['name']}" for d in training_data(source) if d["kind"] == "demo"]


def _demo_description(subset: str) -> str:
    """What a demo subset is made of (its builder's source note), or '' when the corpus is not built here."""
    from ..data.paired import PAIRED_DEMO_SUBSETS

    if subset in PAIRED_DEMO_SUBSETS:
        return PAIRED_DEMO_SUBSETS[subset].description
    try:
        from ..data.demo import read_manifest

        entries = read_manifest().get("subsets", {})
    except (OSError, ValueError):
        return ""
    entry = next((e for key, e in entries.items() if key.split("/")[-1] == subset), None)
    return (entry or {}).get("source") or ""


# ---------------------------------------------------------------------------------------------- evaluation


def eval_results(source: PublishSource) -> list[EvalResult]:
    """One `EvalResult` per number the run's end-of-run evaluation reported for this task (model values;
    random-init and chance baselines go in the card's text)."""
    if source.finetune_section:
        return _finetune_results(source)
    report = ((source.metrics or {}).get("evaluation") or {}).get(source.task or "") or {}
    if not isinstance(report, dict):
        return []
    if any(kind in report for kind in ("retrieval", "zero_shot", "emergent")):
        return _binding_results(report)
    found = modalities(source.config)
    return _probe_results(report, found[0] if found else None)


def _probe_results(report: dict[str, Any], modality: str | None) -> list[EvalResult]:
    """`{"<subset or source>/<label_column>": {probe: metrics}}` of frozen-feature probes."""
    results = []
    for key, probes in report.items():
        dataset, _, label = key.rpartition("/")
        name = Path(dataset).name
        for probe, values in probes.items():
            for metric, value in (values or {}).items():
                label_probe = PROBE_METRICS.get((probe, metric))
                if label_probe is None or not isinstance(value, (int, float)):
                    continue
                task = (
                    "tabular-regression"
                    if probe == "ridge"
                    else CLASSIFICATION_PIPELINES.get(modality or "", "other")
                )
                results.append(EvalResult(
                    task_type=task, task_name=f"{'regression' if probe == 'ridge' else 'classification'} "
                    f"of `{label}` from frozen features", dataset_type=_dataset_type(dataset), dataset_name=name,
                    dataset_split="test", metric_type=label_probe[0], metric_name=label_probe[1].format(**values),
                    metric_value=float(value),
                ))  # fmt: skip
    return results


def _finetune_results(source: PublishSource) -> list[EvalResult]:
    """A fine-tuning run's test metrics (of its best validation checkpoint)."""
    test = (source.metrics or {}).get("test") or {}
    data = training_data(source)
    if not isinstance(test, dict) or not data:
        return []
    name = data[0]["name"]
    head, label = source.finetune_section.get("head"), source.data_section.get("label_column")
    return [
        EvalResult(
            task_type=pipeline_tag(source) or "other",
            task_name=f"{head} of `{label}` (fine-tuned)",
            dataset_type=_dataset_type(name) if data[0]["kind"] == "demo" else name,
            dataset_name=name,
            dataset_split="test",
            metric_type=metric,
            metric_name=f"test {metric}",
            metric_value=float(value),
        )
        for metric, value in test.items()
        if metric != "loss" and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


# (probe, metric) -> (model-index metric type, metric name formatted with the probe's settings)
PROBE_METRICS = {
    ("knn", "accuracy"): ("accuracy", "kNN accuracy (k={k})"),
    ("linear_probe", "accuracy"): ("accuracy", "linear probe accuracy"),
    ("linear_probe", "macro_f1"): ("f1", "linear probe macro F1"),
    ("ridge", "r2"): ("r_squared", "ridge R2"),
    ("ridge", "mae"): ("mae", "ridge MAE"),
}


def _binding_results(report: dict[str, Any]) -> list[EvalResult]:
    results = []
    for kind in ("retrieval", "emergent"):
        for name, entry in (report.get(kind) or {}).items():
            for direction, cells in entry.items():
                if not (isinstance(cells, dict) and "_to_" in direction):
                    continue
                for metric, cell in cells.items():
                    if isinstance(cell, dict) and "model" in cell and metric.startswith("recall@"):
                        k = metric.removeprefix("recall@")
                        a, b = direction.split("_to_")
                        results.append(EvalResult(
                            task_type="retrieval", task_name=f"{kind} between paired modalities" if kind ==
                            "retrieval" else "emergent retrieval (modalities never paired in training)",
                            dataset_type=_dataset_type(name), dataset_name=name, dataset_split="test",
                            metric_type=f"recall_at_{k}", metric_name=f"{a} to {b} recall@{k}",
                            metric_value=float(cell["model"]),
                        ))  # fmt: skip
    for name, entry in (report.get("zero_shot") or {}).items():
        for metric, label in (
            ("accuracy", "zero-shot accuracy"),
            ("top5_accuracy", "zero-shot top-5 accuracy"),
        ):
            if isinstance(entry.get(metric), dict):
                results.append(EvalResult(
                    task_type=ZERO_SHOT_TASKS.get(entry.get("modality"), "zero-shot-classification"),
                    task_name=f"zero-shot {entry.get('modality')} classification ({entry.get('num_classes')} "
                    "classes)", dataset_type=_dataset_type(name), dataset_name=name, dataset_split="test",
                    metric_type=metric.replace("top5", "top_5"), metric_name=label,
                    metric_value=float(entry[metric]["model"]),
                ))  # fmt: skip
    return results


def _dataset_type(name: str) -> str:
    """A demo subset as `mmfm-demo/<subset>` (`ucr/GunPoint` -> `mmfm-demo/ucr`); a local source by file name."""
    if "/" in name and not name.startswith("ucr/"):
        return Path(name).name
    return f"{DEMO_DATASET_PREFIX}/{name.split('/')[0]}"


def baselines(source: PublishSource) -> list[dict[str, Any]]:
    """Rows `{"task", "dataset", "metric", "model", "random_init", "chance"}` of a binding evaluation, so the
    card shows each number next to the same model at random initialisation and to chance."""
    report = ((source.metrics or {}).get("evaluation") or {}).get(source.task or "") or {}
    rows = []
    for kind in ("retrieval", "emergent", "zero_shot"):
        for name, entry in (report.get(kind) or {}).items() if isinstance(report, dict) else ():
            groups = {"": entry} if kind == "zero_shot" else {
                d.replace("_to_", " to "): c for d, c in entry.items() if isinstance(c, dict) and "_to_" in d
            }  # fmt: skip
            for group, cells in groups.items():
                for metric, cell in cells.items():
                    if isinstance(cell, dict) and "model" in cell:
                        rows.append({
                            "task": kind.replace("_", "-"), "dataset": name, "metric": f"{group} {metric}".strip(),
                            "model": cell["model"], "random_init": cell.get("random_init"), "chance": cell.get("chance"),
                        })  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------- training


def hyperparameters(source: PublishSource) -> list[tuple[str, Any]]:
    """`(name, value)` rows of how the run trained, from `run_config.yaml` and `metrics.json`."""
    run, metrics = source.run_config or {}, source.metrics or {}
    if not run and not metrics:
        return []
    training = run.get("training") or {}
    task, tune = source.task_section, source.finetune_section
    peft = tune.get("peft") or {}
    rows: list[tuple[str, Any]] = [
        ("objective", task.get("objective")),
        ("objective settings", task.get("objective_config") or None),
        ("head", tune.get("head")),
        ("label column", source.data_section.get("label_column") if tune else None),
        (
            "PEFT",
            f"{peft['method']} (r={peft.get('r')})" if peft.get("method") not in (None, "none") else None,
        ),
        ("best validation step", metrics.get("best_step") if tune else None),
        ("metric for the best step", metrics.get("metric_for_best") if tune else None),
        ("steps", metrics.get("steps", training.get("max_steps"))),
        ("batch size per device", training.get("per_device_batch_size")),
        ("gradient accumulation steps", training.get("gradient_accumulation_steps")),
        ("rows per optimizer step (all processes)", metrics.get("rows_per_step")),
        ("world size (processes)", metrics.get("num_processes")),
        ("learning rate", training.get("learning_rate")),
        ("schedule", _schedule(training)),
        ("optimizer", _optimizer(training)),
        ("max gradient norm", training.get("max_grad_norm")),
        ("mixed precision", metrics.get("mixed_precision", training.get("mixed_precision"))),
        (
            "distributed",
            str(metrics["distributed_type"]).removeprefix("DistributedType.")
            if metrics.get("distributed_type")
            else None,
        ),
        ("device", metrics.get("device")),
        ("seed", run.get("seed")),
        ("training time", _duration(metrics.get("train_seconds"))),
        ("throughput", _throughput(metrics.get("throughput") or {})),
        ("final loss", metrics.get("final_loss")),
        ("resumed from a checkpoint", "yes" if metrics.get("resumed_from") else None),
    ]
    return [(name, value) for name, value in rows if value not in (None, "", {})]


def _schedule(training: dict[str, Any]) -> str | None:
    if not training.get("lr_scheduler"):
        return None
    return f"{training['lr_scheduler']}, warmup ratio {training.get('warmup_ratio', 0)}"


def _optimizer(training: dict[str, Any]) -> str | None:
    if "adam_beta1" not in training:
        return None
    return (
        f"AdamW (betas {training['adam_beta1']}, {training.get('adam_beta2')}; eps {training.get('adam_epsilon')}; "
        f"weight decay {training.get('weight_decay')})"
    )


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    return (
        f"{seconds:.1f} s"
        if seconds < 120
        else f"{seconds / 60:.1f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


def _throughput(throughput: dict[str, Any]) -> str | None:
    rate = throughput.get("samples_per_s")
    return f"{rate:.1f} samples/s" if isinstance(rate, (int, float)) else None


__all__ = [
    "architecture",
    "base_model",
    "baselines",
    "count_parameters",
    "dataset_ids",
    "eval_results",
    "hyperparameters",
    "is_hub_id",
    "modalities",
    "objective",
    "objective_description",
    "pipeline_tag",
    "training_data",
]
