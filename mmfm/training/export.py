"""The end of a run: the trained pretraining model(s) saved with `save_pretrained` (safetensors) and
their processors, so `AutoModel.from_pretrained(folder)` gives the encoder and
`AutoModelForPreTraining.from_pretrained(folder)` the model with its heads, for continued pretraining.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from .collective import main_process_result
from .setup import Task

logger = logging.getLogger(__name__)


def export_models(
    accelerator: Accelerator,
    model: torch.nn.Module,
    tasks: dict[str, Task],
    folder: Path,
    fp32_checkpoint: Path | None = None,
) -> dict[str, str]:
    """Save each task's model to `folder` (one task) or `folder/<task>` (several); returns task -> folder.

    `fp32_checkpoint`: a DeepSpeed checkpoint (`save_state` folder) to read float32 master weights from,
    for runs that trained in bf16/fp16 under DeepSpeed.

    Every process must call this: under DeepSpeed ZeRO-3 `get_state_dict` gathers the partitioned
    weights collectively (a main-process-only call would hang). The state dict goes through transformers'
    `save_pretrained`, which writes tied weights (the MLM decoder and the input embeddings) once, where
    DeepSpeed's own `zero_to_fp32 --safe_serialization` fails on them (notes/stack.md section 4).
    """
    if fp32_checkpoint is not None:
        # DeepSpeed in bf16/fp16 keeps the float32 master weights in its optimizer partitions; the module
        # (what get_state_dict gathers) holds their 16-bit copies. Export the master weights.
        state = _deepspeed_fp32_state(fp32_checkpoint) if accelerator.is_main_process else {}
    else:
        state = accelerator.get_state_dict(model)
    targets = {name: folder if len(tasks) == 1 else folder / name for name in tasks}

    def write() -> None:
        _check_finite(state)
        try:
            _save(tasks, state, targets)
        except OSError as err:
            raise ValueError(
                f"Could not write the exported model under {folder} ({type(err).__name__}: {err}). The run's "
                "final checkpoint is intact: free disk space and run the same command, which exports it again."
            ) from err

    # The main process writes; its error, if any, is raised on every process.
    main_process_result(accelerator, write)
    accelerator.wait_for_everyone()
    return {name: str(path) for name, path in targets.items()}


def _check_finite(state: dict[str, torch.Tensor]) -> None:
    """Refuse to publish NaN/Inf weights (a diverged run whose last steps were not all caught)."""
    bad = [
        name for name, value in state.items() if value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise ValueError(
            f"Refusing to export: {len(bad)} weight tensor(s) hold NaN or Inf (e.g. {bad[:3]}). The run diverged; "
            "continue from an earlier checkpoint (`checkpointing.resume=<output_dir>/checkpoints/step_...`) with a "
            "lower `training.learning_rate`, `training.max_grad_norm` on, or bf16 instead of fp16."
        )


def _save(tasks: dict[str, Task], state: dict[str, torch.Tensor], targets: dict[str, Path]) -> None:
    for name, task in tasks.items():
        prefix = "" if len(tasks) == 1 else f"models.{name}."
        own = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        # DeepSpeed gathers tied weights as separate tensors; keep one copy (the model re-ties on load).
        for tied in getattr(task.model, "all_tied_weights_keys", None) or {}:
            own.pop(tied, None)
        task.model.save_pretrained(targets[name], state_dict=own, safe_serialization=True)
        task.processor.save_pretrained(targets[name])
        logger.info("Exported %s to %s", name, targets[name])


def _deepspeed_fp32_state(checkpoint: Path) -> dict[str, torch.Tensor]:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(checkpoint))


__all__ = ["export_models"]
