"""Pretraining with Accelerate and DeepSpeed: run configs, data streams, the loop, checkpoints, metrics.

`recipes/pretrain.py` strings these together; each piece is importable for custom loops:

    config = load_config("recipes/configs/mae.yaml", ["training.max_steps=100"])
    accelerator = build_accelerator(config)
    tasks = build_tasks(config, accelerator)
"""

from .checkpointing import complete_checkpoints, load_checkpoint, save_checkpoint
from .config import RunConfig, load_config, parse_command_line
from .evaluation import evaluate_continued, evaluate_exports
from .export import export_models
from .run_folder import RunFolder, prepare_output_dir
from .setup import (
    MultiTaskModel,
    Task,
    build_accelerator,
    build_optimizer,
    build_scheduler,
    build_tasks,
    combine_models,
)
from .trainer import NonFiniteLossError, Trainer

__all__ = [
    "MultiTaskModel",
    "NonFiniteLossError",
    "RunConfig",
    "RunFolder",
    "Task",
    "Trainer",
    "build_accelerator",
    "build_optimizer",
    "build_scheduler",
    "build_tasks",
    "combine_models",
    "complete_checkpoints",
    "evaluate_continued",
    "evaluate_exports",
    "export_models",
    "load_checkpoint",
    "load_config",
    "parse_command_line",
    "prepare_output_dir",
    "save_checkpoint",
]
