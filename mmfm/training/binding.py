"""Binding tasks (`objective: clip` or `siglip`): an `MMFMModel` whose towers are bound into one embedding
space by a contrastive loss over paired rows, ImageBind-style when several modalities share an anchor.

The data are paired rows (`mmfm.data.paired`): a paired demo subset or local files whose columns carry
two or more modalities. Rows are grouped by the modalities they carry; each group is one stream:

- `pairs`: one pair of modalities (CLIP, SigLIP); every source must carry both.
- `anchor`: every source pairs the anchor with one other modality (text-image, text-audio, ...); a step
  trains one pair, the pairs taking turns in a fixed order, so every process trains the same pair.
- `all_pairs`: rows that carry more than two modalities contribute every pair of them (the model averages
  the loss over the pairs it is given).

The loop sees a binding task as any other task: its stream yields `{modality: encoder inputs}` batches,
and every step calls the model with `return_loss=True`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from accelerate import Accelerator
from datasets import Dataset, concatenate_datasets
from transformers import PreTrainedModel

from ..data import BatchStream, first_row, load_local
from ..data.paired import PairedRowCollator, load_paired_demo, paired_modalities
from ..evaluation.binding_demo import processor_options
from ..modalities import get_modality
from ..models import ENCODER_CLASSES, MMFMConfig, MMFMModel
from ..models.modeling_mmfm import _encoder_config
from ..processing import MMFMProcessor
from .config import RunConfig, TaskSection
from .pretrained import resolve_model_source
from .tasks import forward_input_names, load_tokenizer

logger = logging.getLogger(__name__)


class BindingObjective:
    """What the training loop reads of an objective, for a binding task: every step asks the model for its
    contrastive loss; throughput counts pairs (rows)."""

    processor_kwargs: Mapping[str, Any] = {}
    collator = None
    unit = "pairs"

    def __init__(self, name: str, modalities: tuple[str, ...]):
        self.name, self.modalities = name, modalities
        self.modality = "+".join(modalities)
        self.description = f"{name.upper()} binding of {', '.join(modalities)}"

    def step_kwargs(self, objective_config: Any, progress: float) -> dict[str, Any]:
        return {"return_loss": True}

    @staticmethod
    def count_units(inputs: Mapping[str, Mapping[str, torch.Tensor]]) -> int:
        """Rows (paired examples) of one micro-batch."""
        first = next(iter(inputs.values()))
        return int(next(iter(first.values())).shape[0])


class PairStreams:
    """Endless batches from one stream per group of modalities, taking turns (draw i comes from group i mod
    G), so every process draws the same group at every micro-batch; resumable like a `BatchStream`."""

    def __init__(self, streams: dict[str, BatchStream]):
        self.streams = streams
        self.draws = 0
        self._last = next(iter(streams.values()))

    @property
    def epoch(self) -> int:
        """The epoch of the stream the last batch came from."""
        return self._last.epoch

    def __iter__(self) -> PairStreams:
        return self

    def __next__(self) -> dict[str, Any]:
        names = list(self.streams)
        self._last = self.streams[names[self.draws % len(names)]]
        batch = next(self._last)
        # A batch whose every pair was refused does not take a turn: the loop draws again from the same group,
        # so processes that skipped different rows still train the same pair.
        if batch["inputs"]:
            self.draws += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "streams": {name: s.state_dict() for name, s in self.streams.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.draws = int(state["draws"])
        for name, position in state["streams"].items():
            self.streams[name].load_state_dict(position)


# ---------------------------------------------------------------------------------------------- data


def load_paired_sources(section: TaskSection, where: str) -> dict[tuple[str, ...], Dataset]:
    """The task's training rows grouped by the modalities (of `binding.modalities`) they carry.

    Raises:
        ValueError: a source that carries fewer than two of the task's modalities, or that the mode does not
            allow (a pair of other modalities, no anchor), naming the source and the modalities it carries.
    """
    binding, data = section.binding, section.data
    wanted = tuple(binding.modalities)
    if data.source == "demo":
        if not data.subsets:
            raise ValueError(f"`{where}.data.subsets` is empty: name paired demo subsets to train on.")
        sources = {name: load_paired_demo(name, "train") for name in data.subsets}
    else:
        spec = get_modality("vision" if "vision" in wanted else wanted[0])
        loaded = load_local(data.source, spec, f"{where}.data", data.format, False)
        sources = {data.source: loaded["train"] if hasattr(loaded, "keys") and "train" in loaded else loaded}
    groups: dict[tuple[str, ...], list[Dataset]] = {}
    for name, rows in sources.items():
        carried = paired_modalities(rows.column_names)
        used = tuple(m for m in wanted if m in carried)
        problem = None
        if len(used) < 2:
            problem = f"carries {list(carried) or 'no modality'}, fewer than two of {list(wanted)}"
        elif binding.mode == "pairs" and set(used) != set(wanted):
            problem = f"carries {list(used)}, not the pair {list(wanted)}"
        elif binding.mode == "anchor" and (binding.anchor not in used or len(used) != 2):
            problem = f"carries {list(used)}, not the anchor {binding.anchor!r} and one other modality"
        if problem:
            raise ValueError(
                f"`{where}.data` source {name!r} {problem} (`{where}.binding.mode` = {binding.mode}); its columns "
                f"are {rows.column_names}."
            )
        groups.setdefault(used, []).append(rows)
    return {used: _concatenate(parts, used, section) for used, parts in groups.items()}


def _concatenate(parts: list[Dataset], modalities: tuple[str, ...], section: TaskSection) -> Dataset:
    columns: list[str] = []
    for modality in modalities:
        required, optional = get_modality(modality).columns(section.data.text_column)
        columns += [c for c in required + optional if all(c in p.column_names for p in parts)]
    parts = [p.select_columns(columns) for p in parts]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


# ---------------------------------------------------------------------------------------------- model


def build_binding_model(
    section: TaskSection, where: str, tokenizer, attn_implementation: str, first_rows: dict[str, dict]
) -> MMFMModel:
    """A new `MMFMModel` of the task's towers: each from `binding.towers` (a saved model) or built from
    `model.preset` + the fields the data decides + `model.config.<modality>`; then the locks.

    Every process must call this (under DeepSpeed ZeRO-3 building is collective).
    """
    binding = section.binding
    saved: dict[str, PreTrainedModel] = {}
    configs = {}
    for modality in binding.modalities:
        spec = get_modality(modality)
        if modality in binding.towers:
            field = f"{where}.binding.towers.{modality}"  # a folder or a Hub id (mmfm.training.pretrained)
            folder = resolve_model_source(binding.towers[modality], field).folder
            saved[modality] = ENCODER_CLASSES[modality].from_pretrained(folder)
            configs[modality] = saved[modality].config
            continue
        fields = {
            **spec.fields_from_data(first_rows.get(modality, {})),
            **section.model.config.get(modality, {}),
        }
        if spec.tokenized and tokenizer is not None:
            fields.setdefault("vocab_size", len(tokenizer))
            fields.setdefault("pad_token_id", tokenizer.pad_token_id)
        try:
            configs[modality] = spec.config_class.from_preset(section.model.preset, **fields)
        except (ValueError, TypeError) as err:
            raise ValueError(f"`{where}.model.config.{modality}`: {err}") from err
    config = MMFMConfig(
        projection_dim=binding.projection_dim, loss_type=section.objective,
        gather_negatives=binding.gather_negatives, logit_scale_init_value=binding.logit_scale_init,
        logit_bias_init_value=binding.logit_bias_init,
        **{f"{m}_config": _encoder_config(c) for m, c in configs.items()},
    )  # fmt: skip
    model = MMFMModel._from_config(config, attn_implementation=attn_implementation)
    for modality, encoder in saved.items():
        _copy_weights(model.encoders[modality], encoder)
        logger.info("%s: the %s tower starts from %s.", where, modality, binding.towers[modality])
    for modality, unlocked in binding.lock.items():
        model.lock_tower(modality, unlocked)
        logger.info("%s: the %s tower is locked (last %d block(s) train).", where, modality, unlocked)
    return model


def _copy_weights(target: torch.nn.Module, source: torch.nn.Module) -> None:
    """`source`'s weights into `target`, also when DeepSpeed ZeRO-3 partitioned `target` while building it."""
    partitioned = [p for p in target.parameters() if hasattr(p, "ds_id")]
    if not partitioned:
        target.load_state_dict(source.state_dict())
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=0):
        if torch.distributed.get_rank() == 0:
            target.load_state_dict(source.state_dict())


# ---------------------------------------------------------------------------------------------- task


def build_binding_task(name: str, section: TaskSection, config: RunConfig, accelerator: Accelerator):
    """The `Task` of a binding section: paired data (checked before the model is built), the composite
    model, its processor and one stream per group of modalities.

    Raises:
        ValueError: a source without the task's modalities, or a global batch of one row (no negatives).
    """
    from .setup import Task

    where = f"tasks.{name}"
    training, data, binding = config.training, section.data, section.binding
    global_batch = training.per_device_batch_size * accelerator.num_processes
    if global_batch < 2:
        raise ValueError(
            f"`{where}` ({section.objective}) needs negatives: a global batch of {global_batch} row has none. Set "
            "`training.per_device_batch_size` to 2 or more (contrastive losses want hundreds)."
        )
    tokenizer = load_tokenizer(section, where) if "text" in binding.modalities else None
    with accelerator.main_process_first():
        groups = load_paired_sources(section, where)
    first_rows: dict[str, dict] = {}
    for rows in groups.values():
        row = first_row(rows) or {}
        for modality in paired_modalities(rows.column_names):
            first_rows.setdefault(modality, row)
    model = build_binding_model(section, where, tokenizer, training.attn_implementation, first_rows)
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    processor = MMFMProcessor.from_model_config(model.config, tokenizer)
    if {"text", "audio"} <= set(binding.modalities):
        # transformers' zero-shot audio pipeline calls the model with the text's and the audio's outputs in one
        # call, so the exported audio extractor must not add a second `attention_mask` by default (one clip
        # needs none; mmfm's own batches ask for it explicitly).
        processor["audio"].return_attention_mask = False
    streams = {}
    for modalities, rows in groups.items():
        collate = PairedRowCollator(
            processor, modalities, where, text_column=data.text_column, max_length=data.max_length,
            on_bad_sample=data.on_bad_sample, processor_kwargs=processor_options(modalities),
        )  # fmt: skip
        streams["+".join(modalities)] = BatchStream(
            rows, collate, training.per_device_batch_size, accelerator.process_index, accelerator.num_processes,
            config.seed, data.num_workers, data.shuffle_buffer, f"{where}.data ({'+'.join(modalities)})",
        )  # fmt: skip
    stream = next(iter(streams.values())) if len(streams) == 1 else PairStreams(streams)
    objective = BindingObjective(section.objective, tuple(binding.modalities))
    logger.info(
        "Task %s: %s over %s (%s mode), %.2fM parameters", name, objective.description,
        ", ".join(streams), binding.mode, sum(p.numel() for p in model.parameters()) / 1e6,
    )  # fmt: skip
    return Task(name, section, objective, model, processor, None, stream, forward_input_names(model))


__all__ = [
    "BindingObjective",
    "PairStreams",
    "build_binding_model",
    "build_binding_task",
    "load_paired_sources",
]
