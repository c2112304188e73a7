"""Everything a run needs before its first step: the Accelerator, the run folder, each task's tokenizer,
data and model, the optimizer and the schedule. The training loop itself is in `mmfm.training.trainer`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    InitProcessGroupKwargs,
    ProjectConfiguration,
    TorchDynamoPlugin,
)
from transformers import PreTrainedModel, get_scheduler

from ..data import BadRowLimits, BatchStream, RowCollator, first_row, load_rows, pack_texts
from ..objectives import Objective, get_objective
from ..processing import MMFMProcessor
from .binding import build_binding_task
from .config import RunConfig, TaskSection, TrainingSection, flatten, to_dict
from .pretrained import ModelSource, resolve_for_run
from .tasks import build_model, forward_input_names, load_tokenizer

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- accelerator


def build_accelerator(config: RunConfig) -> Accelerator:
    """An Accelerator for the run: CPU (gloo) when there is no GPU, DDP that tolerates parameters a step
    does not use (multi-task runs train one task per step), TensorBoard under `<output_dir>/logs`."""
    no_gpu = not torch.cuda.is_available()
    if config.training.mixed_precision == "fp16" and no_gpu and not _has_other_accelerator():
        # Accelerate would accept it and train in float32 while the run's metrics say fp16.
        raise ValueError(
            "`training.mixed_precision` = fp16 needs a GPU, and this machine has none (Accelerate would silently "
            "train in float32). Use `training.mixed_precision=bf16` (CPU autocast) or `no`."
        )
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    handlers: list[Any] = []
    if no_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # DeepSpeed on CPU needs the backend named explicitly (notes/stack.md section 4); a single process
        # without a launcher must not ask for a process group at all.
        handlers.append(InitProcessGroupKwargs(backend="gloo", timeout=timedelta(minutes=30)))
    # A step that trains one task (multi-task runs) or one pair of towers (anchor binding) leaves the other
    # parameters without gradients, which DDP must be told to expect.
    partial_steps = len(config.tasks) > 1 or any(
        t.binds and len(t.binding.modalities) > 2 for t in config.tasks.values()
    )
    if partial_steps:
        handlers.append(DistributedDataParallelKwargs(find_unused_parameters=True))
    training = config.training
    accelerator = Accelerator(
        # `cpu=True` makes a multi-process CPU launch use DDP over gloo; it would also switch DeepSpeed off,
        # which runs on CPU by itself (DS_ACCELERATOR=cpu).
        cpu=no_gpu and not deepspeed,
        mixed_precision=training.mixed_precision,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        log_with=[t for t in config.logging.report_to if t != "none"] or None,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=f"{config.output_dir}/logs"
        ),
        kwargs_handlers=handlers,
        dynamo_plugin=TorchDynamoPlugin(backend="inductor") if training.torch_compile else None,
        step_scheduler_with_optimizer=False,
    )
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        _fill_deepspeed_config(accelerator, training)
    return accelerator


def _has_other_accelerator() -> bool:
    """An accelerator other than CUDA that runs fp16 autocast (Intel XPU, Ascend NPU, Apple MPS, ...)."""
    from accelerate.utils import is_mlu_available, is_mps_available, is_npu_available, is_xpu_available

    return any(check() for check in (is_xpu_available, is_npu_available, is_mlu_available, is_mps_available))


def _fill_deepspeed_config(accelerator: Accelerator, training: TrainingSection) -> None:
    """Values Accelerate would take from a prepared DataLoader or its own config: the recipe batches
    itself (per task), so it fills them from the run config."""
    ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    if ds_config.get("train_micro_batch_size_per_gpu", "auto") == "auto":
        ds_config["train_micro_batch_size_per_gpu"] = training.per_device_batch_size
    if ds_config.get("train_batch_size", "auto") == "auto":
        ds_config["train_batch_size"] = (
            training.per_device_batch_size * training.gradient_accumulation_steps * accelerator.num_processes
        )
    if ds_config.get("gradient_clipping", "auto") == "auto":
        ds_config["gradient_clipping"] = training.max_grad_norm or 0.0


# ---------------------------------------------------------------------------------------------- tasks


@dataclass
class Task:
    """One objective of the run with everything the loop needs for it.

    Attributes:
        name: the task's key in the config (`tasks.<name>`).
        objective: the registry entry of its objective (model class, corruption, schedule, ...).
        model: the pretraining model (not wrapped; the loop calls the prepared one); `model.objective`
            holds the objective's hyperparameters.
        processor: turns rows into model inputs; saved with the exported model.
        text_collator: tokenized modalities: pads and corrupts token ids (e.g. MLM masking).
        stream: this process's endless batches.
        input_names: the model's forward arguments (other processor outputs are dropped).
        init_source: where the model was continued from (`model.init_from` resolved), None for a new model.
    """

    name: str
    section: TaskSection
    objective: Objective
    model: PreTrainedModel
    processor: Any
    text_collator: Any
    stream: BatchStream
    input_names: set[str]
    flops_per_unit: float | None = field(default=None)
    init_source: ModelSource | None = field(default=None)

    @property
    def unit(self) -> str:
        """What throughput counts (tokens, patches, nodes; pairs for binding tasks)."""
        return self.objective.unit if self.section.binds else self.objective.spec.unit

    def count_units(self, inputs: dict[str, torch.Tensor]) -> int:
        """Tokens, patches or nodes (padding excluded) in one micro-batch of model inputs."""
        if self.section.binds:
            return self.objective.count_units(inputs)
        return self.objective.spec.count_units(inputs, self.model.config)


def build_tasks(config: RunConfig, accelerator: Accelerator) -> dict[str, Task]:
    """Tokenizer, data (checked before any model is built) and model of every task, in config order.

    Every process builds every model (a collective operation under DeepSpeed ZeRO-3). The main process
    reads and packs data first so the `datasets` cache is written once.
    """
    tasks = {}
    for name, section in config.tasks.items():
        # Saved models named by Hub ids: located (online: downloaded) by the main process, the same commit on all.
        sources = {
            f"tasks.{name}.binding.towers.{modality}": value for modality, value in section.binding.towers.items()
        }
        if section.model.init_from:
            sources[f"tasks.{name}.model.init_from"] = section.model.init_from
        resolved = {field: resolve_for_run(accelerator, value, field) for field, value in sources.items()}
        if section.binds:
            tasks[name] = build_binding_task(name, section, config, accelerator)
            continue
        where = f"tasks.{name}"
        objective = get_objective(section.objective)
        spec, data = objective.spec, section.data
        tokenizer = load_tokenizer(section, where) if spec.tokenized else None
        with accelerator.main_process_first():
            rows = load_rows(
                data.source, spec, f"{where}.data", subsets=data.subsets, format=data.format,
                streaming=data.streaming, include=data.include, text_column=data.text_column,
                num_shards=data.num_workers, limits=BadRowLimits.of(data, f"{where}.data"),
            )  # fmt: skip
            first = first_row(rows)
            replay = _load_replay(section, spec, where, tokenizer)
            if spec.tokenized and data.packing:
                rows = pack_texts(
                    rows, tokenizer, data.text_column, data.max_length, data.on_bad_sample, f"{where}.data"
                )
        model = build_model(
            section, where, tokenizer, config.training.attn_implementation, spec.fields_from_data(first)
        )
        if config.training.gradient_checkpointing:
            # transformers 5.24 renamed it (the old name warns); 5.17, our floor, has only the old one.
            enable = (
                getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            )
            enable()
        processor = MMFMProcessor.from_model_config(model.config, tokenizer)
        collate = RowCollator(
            spec, processor, dict(objective.processor_kwargs), where, data.text_column, data.max_length,
            data.on_bad_sample,
        )  # fmt: skip
        stream = BatchStream(
            rows, collate, config.training.per_device_batch_size, accelerator.process_index,
            accelerator.num_processes, config.seed, data.num_workers, data.shuffle_buffer, f"{where}.data",
            replay=replay, replay_share=data.replay.share,
        )  # fmt: skip
        text_collator = objective.collator(tokenizer, model.objective) if objective.collator else None
        tasks[name] = Task(
            name, section, objective, model, processor, text_collator, stream, forward_input_names(model),
            init_source=resolved.get(f"{where}.model.init_from"),
        )  # fmt: skip
        partitioned = any(hasattr(p, "ds_numel") for p in model.parameters())
        logger.info(
            "Task %s: %s, %.2fM parameters%s", name, type(model).__name__, _num_parameters(model) / 1e6,
            " (built partitioned by DeepSpeed ZeRO-3)" if partitioned else "",
        )  # fmt: skip
    return tasks


def _load_replay(section: TaskSection, spec, where: str, tokenizer):
    """The original-domain rows a continued run replays (`data.replay`), read and packed like the task's own;
    None when replay is off."""
    data, replay = section.data, section.data.replay
    if not replay.share:
        return None
    field = f"{where}.data.replay"
    rows = load_rows(
        replay.source, spec, field, subsets=replay.subsets, format=data.format, streaming=data.streaming,
        include=replay.include, text_column=data.text_column, num_shards=data.num_workers,
        limits=BadRowLimits.of(data, field),
    )  # fmt: skip
    if spec.tokenized and data.packing:
        rows = pack_texts(rows, tokenizer, data.text_column, data.max_length, data.on_bad_sample, field)
    logger.info(
        "%s: %.0f%% of each batch's rows replayed from %s%s", field, 100 * replay.share, replay.source,
        f" {replay.subsets}" if replay.source == "demo" else "",
    )  # fmt: skip
    return rows


def _num_parameters(model: torch.nn.Module) -> int:
    return sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters())


class MultiTaskModel(torch.nn.Module):
    """The pretraining models of a multi-task run under one module, so Accelerate and DeepSpeed wrap,
    clip, step and checkpoint them together. `forward(task, **inputs)` runs one task's model."""

    def __init__(self, models: dict[str, PreTrainedModel]):
        super().__init__()
        self.models = torch.nn.ModuleDict(models)

    def forward(self, task: str, **inputs: Any) -> Any:
        return self.models[task](**inputs)


def combine_models(tasks: dict[str, Task]) -> torch.nn.Module:
    """The one model the optimizer trains: the task's model, or a `MultiTaskModel` of several."""
    if len(tasks) == 1:
        return next(iter(tasks.values())).model
    return MultiTaskModel({name: task.model for name, task in tasks.items()})


# ---------------------------------------------------------------------------------------------- optimisation


def build_optimizer(model: torch.nn.Module, training: TrainingSection) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (weights of linear layers and embeddings), not on biases,
    norms, positional vectors or learned tokens, as in BERT, GPT-2 and nanoGPT."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        shape = getattr(parameter, "ds_shape", parameter.shape)  # ZeRO-3 parameters are flat partitions
        (decay if len(shape) >= 2 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": training.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=training.learning_rate,
        betas=(training.adam_beta1, training.adam_beta2), eps=training.adam_epsilon,
    )  # fmt: skip


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSection):
    """Linear warmup over `warmup_ratio` of the steps, then cosine, linear or constant."""
    name = {"constant": "constant_with_warmup"}.get(training.lr_scheduler, training.lr_scheduler)
    warmup = round(training.warmup_ratio * training.max_steps)
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=training.max_steps)


def tracker_config(config: RunConfig) -> dict[str, Any]:
    """The config flattened for trackers (TensorBoard hparams take scalars)."""
    return flatten(to_dict(config))


__all__ = [
    "MultiTaskModel",
    "Task",
    "build_accelerator",
    "build_optimizer",
    "build_scheduler",
    "build_tasks",
    "combine_models",
    "tracker_config",
]
