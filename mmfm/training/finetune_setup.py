"""Everything a fine-tuning run needs before its first step, as one `Task` the pretraining loop trains: the
labelled data, the head model (PEFT-wrapped on request), its processor and the stream of labelled batches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from transformers import PretrainedConfig

from ..data import BatchStream
from ..modalities import ModalitySpec
from ..processing import MMFMProcessor
from .collective import main_process_result
from .config import TaskSection
from .finetune_config import FinetuneConfig
from .finetune_data import LabelledData, LabelledRowCollator, load_labelled_data
from .finetune_model import build_finetune_model, finetune_modality, head_class, wrap_peft
from .setup import Task
from .tasks import forward_input_names, load_tokenizer

logger = logging.getLogger(__name__)

TASK = "finetune"


class FinetuneObjective:
    """What the training loop reads of an objective, for a supervised task: no corruption, no per-step
    arguments (the head computes its loss from `labels`); throughput counts the modality's units."""

    collator = None
    processor_kwargs: Mapping[str, Any] = {}

    def __init__(self, spec: ModalitySpec, head: str):
        self.spec, self.name = spec, f"finetune/{head}"

    def step_kwargs(self, objective_config: Any, progress: float) -> dict[str, Any]:
        return {}


@dataclass
class FinetuneSetup:
    """A fine-tuning run, built: `task` (its model is what the optimizer trains), the labelled splits, the
    collator for evaluation, the folder or Hub id an adapter names as its base."""

    task: Task
    data: LabelledData
    collate: LabelledRowCollator
    adapter_base: str | None


def build_finetune(config: FinetuneConfig, accelerator: Accelerator) -> FinetuneSetup:
    """Data first (its errors come before any model is built), then the head model, PEFT, the stream."""
    spec = finetune_modality(config)
    head_class(spec, config.finetune.head)  # a head the modality lacks is refused before the data is read
    section = TaskSection(objective=TASK, model=config.model, evaluation=[])
    section.data = config.data  # what the loop reads of it: the bad-row limits
    tokenizer = load_tokenizer(section, "model") if spec.tokenized else None
    with accelerator.main_process_first():
        data = load_labelled_data(config, spec)
    head = build_finetune_model(config, spec, data, tokenizer, data.train[0])
    processor = MMFMProcessor.from_model_config(head.config, tokenizer)
    collate = LabelledRowCollator(spec, processor, config, data.problem_type, data.prediction_length)
    input_names = forward_input_names(head)  # the head's, not the PEFT wrapper's catch-all signature
    peft = config.finetune.peft.method != "none"
    base = adapter_base(config, head, processor, accelerator) if peft else None
    model = wrap_peft(head, config)
    stream = BatchStream(
        data.train, collate, config.training.per_device_batch_size, accelerator.process_index,
        accelerator.num_processes, config.seed, config.data.num_workers, 1, "data",
    )  # fmt: skip
    task = Task(TASK, section, FinetuneObjective(spec, config.finetune.head), model, processor, None, stream,
                input_names)  # fmt: skip
    logger.info(
        "Fine-tuning %s (%s) on %d training, %d validation and %d test rows, %d label(s).", type(head).__name__,
        config.finetune.peft.method, len(data.train), len(data.validation), len(data.test), data.num_labels,
    )  # fmt: skip
    return FinetuneSetup(task, data, collate, base)


def adapter_base(config: FinetuneConfig, head, processor, accelerator: Accelerator) -> str:
    """What an adapter's `base_model_name_or_path` names: `model.init_from` (local folder or Hub id) when the
    head that `AutoModelFor<X>` builds from it has the run's labels (two classes, transformers' default);
    otherwise (other label counts, regression, forecasting, a new encoder) the head as fine-tuning starts, written once
    to `<output_dir>/base_model/` with its processor, so `AutoPeftModelFor<X>.from_pretrained(adapter)`
    needs no arguments."""
    default = PretrainedConfig()
    init_from = config.model.init_from
    if (init_from and not config.finetune.is_forecasting  # the saved horizon may differ: write the head
            and head.config.num_labels == default.num_labels
            and head.config.problem_type in (None, "single_label_classification")):  # fmt: skip
        return init_from
    folder = Path(config.output_dir) / "base_model"

    def write() -> None:
        if not (folder / "config.json").is_file():  # a resumed run keeps the one written at its start
            head.save_pretrained(folder)
            processor.save_pretrained(folder)

    main_process_result(accelerator, write)
    return str(folder.resolve())


__all__ = ["FinetuneObjective", "FinetuneSetup", "adapter_base", "build_finetune"]
