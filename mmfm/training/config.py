"""Run configuration: YAML files plus `key=value` overrides, checked against one schema before anything
is built.

A run is a tree of dataclasses (`RunConfig` at the root). YAML gives the tree; each `a.b.c=value`
override (the value read as YAML, so `3`, `1e-4`, `true`, `[a, b]` and `null` mean what they say) replaces
one leaf. A key that is not in the schema is refused with the list of valid keys at that level, so a typo
fails in a second, not after the model is built. Architecture lives in `tasks.<name>.model.config`
(fields of the mmfm `PreTrainedConfig`, checked against that class by `mmfm.training.tasks`), run
hyperparameters everywhere else.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from transformers import AutoConfig

from ..objectives import get_objective, objectives


@dataclass
class ModelSection:
    """The pretraining model of one task.

    Attributes:
        preset: size preset of the encoder (`tiny`, `small`, `base`), applied before `config`.
        config: fields of the modality's mmfm config (e.g. `hidden_size: 128`), on top of the preset.
        init_from: a saved mmfm model to continue pretraining from: a folder (`save_pretrained`, a run's
            `model/`) or a Hugging Face Hub id `user/name[@revision]` (offline, from the local cache). Its
            config (encoder and objective hyperparameters) is the model's: `preset` is not applied, and keys of
            `config` and of the task's `objective_config` must agree with the saved values (a differing value
            is refused naming both), except the dropout fields (`LOAD_TIME_FIELDS`), which are applied. It must
            have been pretrained with the task's objective (or be an encoder that was never pretrained).
        tokenizer: text only: `demo` (the demo corpus tokenizer) or a tokenizer folder; ignored when
            `init_from` holds a tokenizer.
    """

    preset: str = "tiny"
    config: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None
    tokenizer: str = "demo"


@dataclass
class ReplaySection:
    """A share of the original pretraining data mixed into a continued run's batches (`data.replay`), against
    forgetting the original domain while training on a new one.

    Attributes:
        share: the fraction of every global batch's rows drawn from the replay data (0: no replay; below 1).
            Map-style data get exactly round(share x rows) replay rows per batch, spread over batches; streams
            draw each row from the replay data with this probability (`datasets.interleave_datasets`).
        source: `demo` (see `subsets`) or local data, read like `data.source`.
        subsets: demo subsets of the task's modality to replay (e.g. the original run's `data.subsets`).
        include: keep only replay rows whose column holds one of the listed values (as `data.include`).
    """

    share: float = 0.0
    source: str = "demo"
    subsets: list[str] = field(default_factory=list)
    include: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class DataSection:
    """Where one task's training rows come from and how they are read.

    Attributes:
        source: `demo` (the demo corpus, see `subsets`) or local data: a file, a glob, a folder of files
            (JSON lines, Parquet, Arrow, CSV) or a folder written by `Dataset.save_to_disk`.
        subsets: demo subsets of the task's modality whose train splits are concatenated.
        format: `json`, `parquet`, `arrow` or `csv`; inferred from the file names when null.
        streaming: read local files as a stream (`datasets` `streaming=True`), for corpora larger than
            memory; each process reads its own part (`split_dataset_by_node`).
        shuffle_buffer: streaming only: examples in the shuffle buffer.
        text_column: text only: the column holding the text.
        max_length: text: tokens per example (with `packing`, the block size).
        packing: text: concatenate tokenized texts and cut them into blocks of exactly `max_length`
            tokens (no padding, as in transformers' `run_mlm`/`run_clm` `group_texts`).
        num_workers: DataLoader worker processes per training process.
        on_bad_sample: `skip` (drop a row that cannot be processed, count it, warn) or `raise` (stop at
            the first, naming it). Bad rows are rows the processor refuses (corrupt or missing images,
            undecodable audio, empty texts, ...) and lines of JSON-lines files that are no JSON object
            (invalid JSON, bytes that are not UTF-8); they count in `skipped_samples`.
        max_bad_rows_in_a_row: with `skip`, the run stops (naming the rows, columns, values and errors)
            after more than this many bad rows in a row (counted by batches: one usable row ends a run), or
            bad lines in a row of a JSON-lines file.
        max_bad_rows: with `skip`, the run stops after more than this many bad rows in one pass over the
            task's data on one process (each epoch sees the same bad rows again), or bad lines in the
            JSON-lines files.
        include: keep only rows whose column holds one of the listed values, e.g.
            `{dataset: [GunPoint, ArrowHead]}` to train on some of the demo UCR sets.
        replay: continued pretraining: a share of each batch from the original data (`ReplaySection`), seeded
            and resumed exactly with the run.
    """

    source: str = "demo"
    subsets: list[str] = field(default_factory=list)
    format: Literal["json", "parquet", "arrow", "csv"] | None = None
    streaming: bool = False
    shuffle_buffer: int = 10_000
    text_column: str = "text"
    max_length: int = 128
    packing: bool = True
    num_workers: int = 0
    on_bad_sample: Literal["skip", "raise"] = "skip"
    max_bad_rows_in_a_row: int = 100
    max_bad_rows: int = 1000
    include: dict[str, list[Any]] = field(default_factory=dict)
    replay: ReplaySection = field(default_factory=ReplaySection)


@dataclass
class EvaluationSection:
    """A frozen-feature evaluation of a task's exported encoder on labelled data, at the end of the run
    (`mmfm.evaluation.evaluate_encoder`, fitted on the train split, scored on the test split).

    Attributes:
        source: `demo` (the demo corpus, see `subset`) or local labelled data read like `data.source`: a
            folder of images with class subfolders (`imagefolder`: labels in `label`), files, a glob, or a
            `save_to_disk` folder. Its `train` and `test` splits are used (folders or file names that say
            train/test); data with one split is divided 80/20, seeded and stratified by the label.
        subset: the demo subset of the task's modality (e.g. `sentiment`, `digits`, `spoken_digits`).
        label_column: class labels (`knn`, `linear_probe`) or a numeric target (`ridge`).
        probes: any of `knn`, `linear_probe`, `ridge`.
        include: keep only rows whose column holds one of the listed values (as `data.include`).
    """

    source: str = "demo"
    subset: str = ""
    label_column: str = "label"
    probes: list[Literal["knn", "linear_probe", "ridge"]] = field(
        default_factory=lambda: ["knn", "linear_probe"]
    )
    include: dict[str, list[Any]] = field(default_factory=dict)


# Objectives that bind modalities into one space (`MMFMModel`'s contrastive losses), configured by a
# task's `binding` section instead of `objective_config`.
BINDING_OBJECTIVES = ("clip", "siglip")


@dataclass
class BindingSection:
    """How a contrastive task (`objective: clip` or `siglip`) binds modalities into one space.

    Attributes:
        modalities: the composite's towers, e.g. `[text, vision]`; every modality of the data's pairs.
        mode: `pairs` (CLIP/SigLIP on one pair of modalities), `anchor` (ImageBind: every other modality
            bound to `anchor`, one pair per step, from data subsets that each pair one modality with the
            anchor) or `all_pairs` (rows carrying more than two modalities contribute every pair).
        anchor: the anchor modality of `anchor` mode (text: every demo modality can be captioned).
        projection_dim: size of the shared embedding space.
        towers: modality -> a saved model (a run's `model/<task>/`, an encoder or pretraining export, or a Hub
            id `user/name[@revision]` resolved like `model.init_from`) to start that tower from; other towers start from `model.preset`/`model.config.<modality>`.
        lock: modality -> how many of its last transformer blocks stay trainable (0: the whole tower is
            frozen, as LiT's locked image tower); its projection always trains.
        gather_negatives: score each process's rows against the embeddings of every process (gathered with
            gradients); false: negatives from the local batch only.
        logit_scale_init: initial log similarity multiplier; null: the loss's own (CLIP ln(1/0.07), SigLIP
            ln 10).
        logit_bias_init: SigLIP's initial logit bias (the paper's -10, sized for batches of thousands).
    """

    modalities: list[str] = field(default_factory=list)
    mode: Literal["pairs", "anchor", "all_pairs"] = "pairs"
    anchor: str = "text"
    projection_dim: int = 256
    towers: dict[str, str] = field(default_factory=dict)
    lock: dict[str, int] = field(default_factory=dict)
    gather_negatives: bool = True
    logit_scale_init: float | None = None
    logit_bias_init: float = -10.0


@dataclass
class TaskSection:
    """One self-supervised objective with its model and data.

    Attributes:
        objective: a registered objective (`mmfm.objectives`; `--help` lists them with their fields), or
            `clip`/`siglip`, which bind the modalities of `binding` into one space (an `MMFMModel`; its
            `model.config` then maps each modality to its encoder fields, and its data are paired rows:
            the paired demo subsets, or files with one column group per modality).
        objective_config: the objective's hyperparameters, fields of its `MMFMObjectiveConfig` (e.g. MAE's
            `mask_ratio` or `decoder_hidden_size`), on top of its defaults and of its sizes for
            `model.preset`; checked against that class. Saved in the model's `pretraining_config`.
        weight: how often a step trains this task, relative to the other tasks (multi-task runs).
        evaluation: probes of the exported encoder at the end of the run (results in `metrics.json`);
            null (the default) runs the objective's default evaluations when the task trains on the demo
            corpus (none on local data), `[]` none.
    """

    objective: str = "mlm"
    objective_config: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    evaluation: list[EvaluationSection] | None = None
    binding: BindingSection = field(default_factory=BindingSection)

    @property
    def binds(self) -> bool:
        """Whether this task trains a contrastive binding of modalities (`binding`)."""
        return self.objective in BINDING_OBJECTIVES

    def evaluations(self) -> list[EvaluationSection]:
        """The evaluations to run: the configured ones; when none are set, the objective's defaults if the task
        trains on the demo corpus (they probe demo subsets, which need not fit a model made for other data,
        e.g. graphs with another node-feature width), else none."""
        if self.evaluation is not None:
            return self.evaluation
        if self.data.source != "demo" or self.binds:
            return []  # a binding task is evaluated by retrieval and zero-shot classification instead
        defaults = get_objective(self.objective).evaluation
        return [build_section(EvaluationSection, dict(entry), "evaluation") for entry in defaults]


@dataclass
class TrainingSection:
    """Optimisation. `per_device_batch_size` x processes x `gradient_accumulation_steps` rows per step.

    Attributes:
        max_steps: optimizer steps of the run.
        per_device_batch_size: rows per micro-batch on each process.
        gradient_accumulation_steps: micro-batches per optimizer step.
        learning_rate, weight_decay, adam_beta1, adam_beta2, adam_epsilon: AdamW; weight decay applies
            to matrices only (biases, norms and other vectors are not decayed).
        lr_scheduler: `cosine`, `linear` or `constant` after `warmup_ratio` x `max_steps` warmup steps.
        max_grad_norm: clip the global gradient norm to this; null turns clipping off (the norm is still
            measured: a NaN/Inf norm skips the step like a NaN/Inf loss).
        mixed_precision: `no`, `bf16` or `fp16` (Accelerate autocast; fp16 needs a GPU).
        gradient_checkpointing: recompute activations in backward to save memory.
        torch_compile: compile the model with `torch.compile` (inductor).
        attn_implementation: `sdpa`, `eager` or `flash_attention_2`.
        max_nonfinite_steps: a NaN/Inf loss or gradient norm skips its step; more than this many skipped
            steps stop the run.
        deterministic: `torch.use_deterministic_algorithms(True)` (slower; for exact reproduction).
    """

    max_steps: int = 300
    per_device_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    gradient_checkpointing: bool = False
    torch_compile: bool = False
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    max_nonfinite_steps: int = 10
    deterministic: bool = False


@dataclass
class CheckpointSection:
    """Periodic checkpoints (`accelerator.save_state` plus a manifest of sizes and checksums) under
    `<output_dir>/checkpoints/step_XXXXXXXX`.

    Attributes:
        save_every: steps between checkpoints (0: only at the end).
        keep_last: complete checkpoints kept; older ones are deleted.
        resume: `auto` (continue from the newest intact checkpoint in `output_dir`, if any; damaged newer
            ones are skipped with a warning), `none`, or the path of a checkpoint folder.
    """

    save_every: int = 100
    keep_last: int = 2
    resume: str = "auto"


@dataclass
class LoggingSection:
    """Progress and trackers.

    Attributes:
        log_every: steps between logged metrics (trackers, history, loss plot).
        report_to: Accelerate trackers (`tensorboard`, `wandb`, ...) or `[]`; TensorBoard logs go to
            `<output_dir>/logs`.
        progress_bar: show a tqdm progress bar on the main process.
    """

    log_every: int = 10
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    progress_bar: bool = True


@dataclass
class HubSection:
    """Publishing the export to the Hugging Face Hub when the run ends (main process, after the evaluation;
    the same as `mmfm-publish <output_dir> --repo-id <model_id>` later, see `mmfm.hub`).

    Attributes:
        push_to_hub: push the export with a model card (evaluation, hyperparameters, loss plot) at the end.
        model_id: the Hub repository, `<user or org>/<name>`; required with `push_to_hub`.
        private: create the repository private (an existing one keeps its visibility).
        revision: the branch to push to, created from main when missing (null: main).
        task: the task whose model a multi-task run pushes (`model/<task>`); a fine-tuning run that exports
            both: `adapter` or `model`; null when the run exports one model.
    """

    push_to_hub: bool = False
    model_id: str | None = None
    private: bool = False
    revision: str | None = None
    task: str | None = None


@dataclass
class RunConfig:
    """The whole run. `tasks` maps a task name (free, e.g. `mlm` or `vision_mae`) to its section.

    Attributes:
        output_dir: the run folder: checkpoints, logs, `metrics.json`, `loss.png`, the exported `model/`.
        seed: seeds Python, NumPy and torch on every process, the data order and the masks.
        overwrite_output_dir: delete an existing run in `output_dir` instead of refusing to start (only a
            folder mmfm created, never one another live run holds).
    """

    output_dir: str = "outputs/default"
    seed: int = 0
    overwrite_output_dir: bool = False
    tasks: dict[str, TaskSection] = field(default_factory=dict)
    training: TrainingSection = field(default_factory=TrainingSection)
    checkpointing: CheckpointSection = field(default_factory=CheckpointSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    hub: HubSection = field(default_factory=HubSection)


# ---------------------------------------------------------------------------------------------- parsing


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"key {key!r} is given twice (first on line {seen[key]}); keep one", key_node.start_mark,
                )  # fmt: skip
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads `1e-5` and `3e4` as strings: its floats need a dot (`1.0e-5`). Configs and overrides
# mean numbers there (`training.adam_epsilon=1e-8`, `model.config.layer_norm_eps=1e-5`), as YAML 1.2 and Python
# read them; integers keep their own resolver, which is consulted first.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str, source: str) -> Any:
    """`text` parsed as YAML (duplicate keys refused); errors name `source`, the line and the column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: plain data only
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"{source}{where}: not valid YAML ({problem}).") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"training.max_steps=10"` -> (["training", "max_steps"], 10); the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"Override {text!r} is not of the form key=value (e.g. training.max_steps=100).")
    path = key.strip().split(".")
    if any(not part for part in path):
        raise ValueError(f"Override key {key!r} has an empty part; keys look like `training.max_steps`.")
    return path, read_yaml(value, f"override {text!r}") if value.strip() else None


def apply_override(tree: dict, path: list[str], value: Any) -> None:
    """Set `tree[path[0]]...[path[-1]] = value`, creating dicts on the way (checked later by the schema)."""
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def resolve_config_path(path: str | Path, kind: str = "") -> Path:
    """A YAML by path, or by the name of a config shipped with mmfm, so an installed `mmfm-pretrain --config mae`
    finds its recipe without a checkout: `mae`, `mae.yaml`, `continue/vision`; with `kind` (a subfolder of the
    shipped configs, e.g. `finetune`), also a bare name there (`vision` for `finetune/vision`).

    Raises:
        FileNotFoundError: neither a file nor a shipped config; the message lists the shipped ones.
    """
    from ..recipes import CONFIGS, shipped_configs  # the recipes package imports training, not the reverse

    source = Path(path)
    if source.is_file():
        return source
    name = source if source.suffix == ".yaml" else source.with_name(f"{source.name}.yaml")
    if not source.is_absolute() and ".." not in source.parts:
        for shipped in (CONFIGS / kind / name, CONFIGS / name) if kind else (CONFIGS / name,):
            if shipped.is_file():
                return shipped
    names = [n.removeprefix(f"{kind}/") for n in shipped_configs() if not kind or n.startswith(f"{kind}/")]
    raise FileNotFoundError(
        f"Config file {str(source)!r} does not exist, and it is not the name of a {kind + ' ' if kind else ''}"
        f"config shipped with mmfm ({', '.join(names)})."
    )


def read_config_tree(
    path: str | Path | None, overrides: list[str] = (), default: str | Path | None = None, kind: str = ""
) -> dict:
    """The YAML file `path` (or `default` when `path` is None; a shipped config's name works too, see
    `resolve_config_path`) as a mapping, with the `key=value` overrides applied; not yet checked."""
    source = resolve_config_path(path if path is not None else default, kind) if (path or default) else None
    tree: dict = {}
    if source is not None:
        try:
            text = source.read_text()
        except UnicodeDecodeError as err:
            raise ValueError(f"Config file {str(source)!r} is not UTF-8 text ({err}).") from None
        tree = read_yaml(text, f"Config file {str(source)!r}") or {}
        if not isinstance(tree, dict):
            raise ValueError(
                f"{source} must hold a YAML mapping at the top level, got {type(tree).__name__}."
            )
    for text in overrides:
        apply_override(tree, *parse_override(text))
    return tree


def load_config(
    path: str | Path | None, overrides: list[str] = (), default: str | Path | None = None
) -> RunConfig:
    """Read a YAML run file (or `default` when `path` is None), apply overrides, validate.

    Raises:
        FileNotFoundError: the YAML file does not exist.
        ValueError/TypeError: an unknown key (the message lists the valid ones), a value of the wrong type
            or outside its choices, or an inconsistent run (e.g. no task).
    """
    config = build_section(RunConfig, read_config_tree(path, overrides, default), "")
    check_run(config)
    return config


def build_section(cls: type, values: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, refusing unknown keys and checking every value's type."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise TypeError(f"`{where or 'config'}` must be a mapping of keys to values, got {values!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in values if key not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(
            f"Unknown config key(s) {[prefix + str(k) for k in unknown]}. Valid keys"
            f"{' under `' + where + '`' if where else ''}: {names}."
        )
    kwargs = {}
    for name in names:
        if name in values:
            kwargs[name] = check_value(hints[name], values[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def check_value(hint: Any, value: Any, where: str) -> Any:
    """`value` converted to `hint` (nested dataclasses built), or a TypeError/ValueError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return check_value(inner[0], value, where)
    if origin is Literal:
        if value is False and "no" in args:  # YAML 1.1 reads a bare `no` as false
            value = "no"
        if value not in args:
            raise ValueError(f"`{where}` must be one of {list(args)}, got {value!r}.")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"`{where}` must be a mapping, got {value!r}.")
        return {str(k): check_value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]  # `report_to=tensorboard` means a list of one
        if not isinstance(value, list):
            raise TypeError(f"`{where}` must be a list, got {value!r}.")
        return [check_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is Any:
        _require_finite(value, where)
        return value
    if hint is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:  # YAML 1.1 reads `1e-4` (no dot) as a string
            number = float(value)
        except ValueError:
            number = None
        if number is not None:
            if not math.isfinite(number):
                raise ValueError(f"`{where}` must be a finite number, got {value!r}.")
            return number
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise TypeError(f"`{where}` must be a {hint.__name__}, got {value!r} ({type(value).__name__}).")
    return value


def _require_finite(value: Any, where: str) -> None:
    """No NaN/Inf anywhere in a free-form value (`model.config`, `objective_config`): no setting means one."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"`{where}` must be a finite number, got {value!r}.")
    if isinstance(value, dict):
        for key, item in value.items():
            _require_finite(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _require_finite(item, f"{where}[{i}]")


def check_run(config: RunConfig) -> None:
    """Checks across fields (single-field types and choices are checked while parsing)."""
    if not config.tasks:
        raise ValueError(
            "The run has no task: add `tasks: {<name>: {objective: ..., data: ...}}` to the config."
        )
    for name, task in config.tasks.items():
        where = f"tasks.{name}"
        if not TASK_NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(
                f"Task name {name!r} must be a plain folder name of letters, digits, `_`, `-` and `.` (its model "
                "is exported to model/<name>), e.g. `mlm` or `vision_mae`."
            )
        if not task.weight > 0:
            raise ValueError(f"`{where}.weight` must be > 0, got {task.weight}.")
        if task.data.source == "demo" and not task.data.subsets:
            raise ValueError(f"`{where}.data.subsets` is empty: name the demo subsets to train on.")
        _check_objective(task, where)
        for i, evaluation in enumerate(task.evaluation or []):
            if evaluation.source == "demo" and not evaluation.subset:
                raise ValueError(
                    f"`{where}.evaluation[{i}].subset` is empty: name a labelled demo subset (or set "
                    f"`{where}.evaluation[{i}].source` to local labelled data)."
                )
            if not evaluation.probes:
                raise ValueError(
                    f"`{where}.evaluation[{i}].probes` is empty: list knn, linear_probe or ridge."
                )
        _require_positive(
            task.data, where + ".data", "max_length", "shuffle_buffer", "max_bad_rows_in_a_row",
            "max_bad_rows",
        )  # fmt: skip
        _require_non_negative(task.data, where + ".data", "num_workers")
        check_replay(task, where)
    _require_positive(
        config.training, "training", "max_steps", "per_device_batch_size", "gradient_accumulation_steps",
        "learning_rate", "max_nonfinite_steps",
    )  # fmt: skip
    _require_non_negative(config.training, "training", "weight_decay")
    _require_positive(config.training, "training", "adam_epsilon")
    for name in ("adam_beta1", "adam_beta2"):
        value = getattr(config.training, name)
        if not 0 <= value < 1:
            raise ValueError(
                f"`training.{name}` must be in [0, 1), got {value} (AdamW's default: 0.9 and 0.999)."
            )
    if not 0 <= config.training.warmup_ratio < 1:
        raise ValueError(f"`training.warmup_ratio` must be in [0, 1), got {config.training.warmup_ratio}.")
    if config.training.max_grad_norm is not None and config.training.max_grad_norm <= 0:
        raise ValueError("`training.max_grad_norm` must be > 0, or null to turn clipping off.")
    _require_non_negative(config.checkpointing, "checkpointing", "save_every")
    _require_positive(config.checkpointing, "checkpointing", "keep_last")
    _require_positive(config.logging, "logging", "log_every")
    check_trackers(config.logging.report_to)
    check_hub(config)


def check_replay(task: TaskSection, where: str) -> None:
    """`data.replay`: a share in [0, 1) and, when it is on, replay data to draw from.

    Raises:
        ValueError: naming the field, the bad value and the fix.
    """
    replay, field_name = task.data.replay, f"`{where}.data.replay"
    if not 0 <= replay.share < 1:
        raise ValueError(
            f"{field_name}.share` must be in [0, 1) (the fraction of each batch's rows from the replay data), got "
            f"{replay.share}."
        )
    if replay.share > 0 and replay.source == "demo" and not replay.subsets:
        raise ValueError(
            f"{field_name}.share` = {replay.share} but `{where}.data.replay.subsets` is empty: name the original "
            "demo subsets to replay (or set `replay.source` to local data, or `replay.share=0`)."
        )
    if replay.share > 0 and task.binds:
        raise ValueError(
            f"{field_name}` is for single-encoder objectives; `{where}` ({task.objective}) draws its pairs from "
            "`data.subsets`: list the original pairs there."
        )


def check_hub(config: RunConfig) -> None:
    """`hub.push_to_hub` names its repository (and a multi-task run its task), and the push can happen:
    checked before training, not after it."""
    hub = config.hub
    if not hub.push_to_hub:
        return
    if not hub.model_id:
        raise ValueError(
            "`hub.push_to_hub` is true but `hub.model_id` is not set: name the Hub repository, e.g. "
            "hub.model_id=<user>/<name> (or set hub.push_to_hub=false and publish later with mmfm-publish)."
        )
    if hub.task is None and len(config.tasks) > 1:
        raise ValueError(
            f"`hub.task` is not set, and this run trains one model per task ({', '.join(config.tasks)}): name the "
            "one `hub.push_to_hub` pushes, e.g. hub.task=" + next(iter(config.tasks)) + "."
        )
    # A run without `tasks` (fine-tuning) names its exports otherwise (`adapter`, `model`): checked at the push.
    if hub.task is not None and config.tasks and hub.task not in config.tasks:
        raise ValueError(
            f"`hub.task` {hub.task!r} is not a task of this run; its tasks: {list(config.tasks)}."
        )
    # Publishing is optional: its module is loaded when a run asks for it.
    from ..hub.publish import CONFIG_NAMES, check_push_settings

    check_push_settings(hub.model_id, hub.revision, names=CONFIG_NAMES)


def check_trackers(report_to: list[str]) -> None:
    """Every tracker named in `logging.report_to` is one Accelerate knows and is installed (Accelerate
    would drop a missing one silently and the run would log nowhere)."""
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = {t.value for t in LoggerType}
    available = {str(getattr(t, "value", t)) for t in get_available_trackers()}
    for name in report_to:
        if name == "none":
            continue
        if name not in known:
            raise ValueError(
                f"`logging.report_to` names {name!r}, not a tracker; choose from {sorted(known)} or []."
            )
        if name != "all" and name not in available:
            raise ValueError(
                f"`logging.report_to` names {name!r}, which is not installed (installed trackers: "
                f"{sorted(available) or 'none'}). `pip install {name}`, or drop it from `logging.report_to`."
            )


def _check_objective(task: TaskSection, where: str) -> None:
    """The objective exists, `objective_config` holds only its fields with valid values, and the model
    section agrees with it (see `check_model_section`)."""
    if task.binds:
        check_binding(task, where)
        return
    try:
        objective = get_objective(task.objective)
    except ValueError as err:
        raise ValueError(f"`{where}.objective`: {err}") from err
    try:
        objective.config_class.from_dict(task.objective_config)
    except ValueError as err:
        raise ValueError(f"`{where}.objective_config` ({task.objective}): {err}") from err
    check_model_section(task, where)
    if task.model.init_from:
        from .pretrained import cached_model_source

        # A Hub id that must be downloaded first is checked when the run builds the model (after the download).
        source = cached_model_source(task.model.init_from, f"{where}.model.init_from")
        if source is not None:
            check_saved_model(objective, source.folder, where, value=task.model.init_from)
            init_overrides(task, AutoConfig.from_pretrained(source.folder), where)


TASK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_binding(task: TaskSection, where: str) -> None:
    """A binding task names known modalities, a mode they allow, towers and locks of its own modalities.

    Raises:
        ValueError: naming the field, the bad value and the choices.
    """
    from ..models import MODALITIES

    binding = task.binding
    if len(binding.modalities) < 2 or len(set(binding.modalities)) != len(binding.modalities):
        raise ValueError(
            f"`{where}.binding.modalities` must list at least two different modalities of {list(MODALITIES)}, "
            f"got {binding.modalities}."
        )
    unknown = [m for m in binding.modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"`{where}.binding.modalities` names {unknown}; modalities are {list(MODALITIES)}.")
    if binding.mode == "anchor" and binding.anchor not in binding.modalities:
        raise ValueError(
            f"`{where}.binding.anchor` = {binding.anchor!r} is not among `{where}.binding.modalities` "
            f"{binding.modalities}."
        )
    if binding.mode == "pairs" and len(binding.modalities) != 2:
        raise ValueError(
            f"`{where}.binding.mode` = pairs binds exactly two modalities, got {binding.modalities}; use "
            "`anchor` or `all_pairs` for more."
        )
    for name in ("towers", "lock"):
        strangers = sorted(set(getattr(binding, name)) - set(binding.modalities))
        if strangers:
            raise ValueError(
                f"`{where}.binding.{name}` names {strangers}, which are not in `{where}.binding.modalities`."
            )
    for modality, unlocked in binding.lock.items():
        if isinstance(unlocked, bool) or not isinstance(unlocked, int) or unlocked < 0:
            raise ValueError(
                f"`{where}.binding.lock.{modality}` must be the number of last blocks left trainable (>= 0), "
                f"got {unlocked!r}."
            )
    if binding.projection_dim <= 0:
        raise ValueError(f"`{where}.binding.projection_dim` must be > 0, got {binding.projection_dim}.")
    strangers = sorted(set(task.model.config) - set(binding.modalities))
    if strangers:
        raise ValueError(
            f"`{where}.model.config` of a binding task maps each modality to its encoder fields; {strangers} "
            f"are not in `{where}.binding.modalities` {binding.modalities}."
        )
    if task.objective_config or task.model.init_from:
        raise ValueError(
            f"`{where}` ({task.objective}) is configured by `{where}.binding`: leave `objective_config` and "
            "`model.init_from` unset (start towers from saved models with `binding.towers`)."
        )


# Encoder fields that record pretraining: set by the objective's model, never by a run's `model.config`.
OBJECTIVE_FIELDS = ("pretraining_objective", "pretraining_config")


def check_model_section(task: TaskSection, where: str) -> None:
    """`model.config` holds only fields of the modality's config, none that records pretraining, and none
    that contradicts the objective's requirements.

    Raises:
        ValueError: an unknown key (the valid ones listed), a recorded field (pointing to `objective` and
            `objective_config`), or a contradiction (both sides named).
    """
    objective = get_objective(task.objective)
    config_class = objective.spec.config_class
    known = set(config_class().to_dict())
    unknown = sorted(set(task.model.config) - known)
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in `{where}.model.config` for {config_class.__name__}; valid keys: "
            f"{sorted(k for k in known if not k.startswith('_') and k not in OBJECTIVE_FIELDS)}."
        )
    recorded = {k: task.model.config[k] for k in OBJECTIVE_FIELDS if k in task.model.config}
    if recorded:
        raise ValueError(
            f"`{where}.model.config` sets {recorded}, which record how a model was pretrained: the objective is "
            f"`{where}.objective` ({task.objective!r}) and its hyperparameters go in `{where}.objective_config`."
        )
    for name, required in objective.encoder_requirements.items():
        if name in task.model.config and task.model.config[name] != required:
            raise ValueError(
                f"`{where}.model.config.{name}` = {task.model.config[name]!r} contradicts `{where}.objective` = "
                f"{task.objective!r}, which needs {name}={required!r}."
            )


def check_saved_model(objective, folder: str, where: str, value: str | None = None) -> None:
    """Refuse to continue a saved model of another modality, or pretrained with another objective.

    Args:
        folder: the saved model's local folder (for a Hub id, its snapshot in the cache).
        value: what `init_from` says (a Hub id), for messages; default `folder`.

    Raises:
        FileNotFoundError: `folder` holds no config.json.
        ValueError: the saved configuration is of another modality, or names another objective (both named).
    """
    folder = str(folder)
    shown = folder if value is None else value
    if not Path(folder, "config.json").is_file():
        raise FileNotFoundError(f"`{where}.model.init_from` = {shown!r} holds no config.json.")
    saved = AutoConfig.from_pretrained(folder)
    if not isinstance(saved, objective.spec.config_class):
        raise ValueError(
            f"`{where}.model.init_from` = {shown!r} holds a {type(saved).__name__}, but `{where}.objective` = "
            f"{objective.name!r} trains a {objective.modality} encoder ({objective.spec.config_class.__name__})."
        )
    recorded = getattr(saved, "pretraining_objective", None)
    if recorded not in (None, objective.name):
        raise ValueError(
            f"`{where}.model.init_from` = {shown!r} was pretrained with objective {recorded!r}, but "
            f"`{where}.objective` is {objective.name!r}. Continue it with `objective: {recorded}`, or start the "
            f"{objective.name!r} task from a new model."
        )


# Encoder fields a continued run may change: they shape no weight and only act while training.
LOAD_TIME_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def init_overrides(task: TaskSection, saved: Any, where: str) -> dict[str, Any]:
    """The `model.config` fields to apply to a model continued from `init_from` (dropout only): every other
    key of `model.config`, and every key of `objective_config`, must equal the saved value.

    Args:
        saved: the saved model's configuration (`AutoConfig.from_pretrained(init_from)`).

    Returns:
        `{field: value}` of `LOAD_TIME_FIELDS` that differ from the saved values (passed to `from_pretrained`).

    Raises:
        ValueError: a key whose value differs from the saved one, naming both values and the fix.
    """
    shown = task.model.init_from
    overrides = {}
    for key, wanted in task.model.config.items():
        recorded = getattr(saved, key, None)
        if _same(wanted, recorded):
            continue
        if key in LOAD_TIME_FIELDS:
            overrides[key] = wanted
            continue
        raise ValueError(
            f"`{where}.model.config.{key}` = {wanted!r}, but `{where}.model.init_from` = {shown!r} was saved with "
            f"{key}={recorded!r}: a continued model keeps its architecture. Drop the key (or set it to "
            f"{recorded!r}); only {list(LOAD_TIME_FIELDS)} may change when continuing."
        )
    recorded_objective = getattr(saved, "pretraining_config", None) or {}
    if task.objective_config:
        defaults = dataclasses.asdict(get_objective(task.objective).config_class())
        for key, wanted in task.objective_config.items():
            recorded = recorded_objective.get(key, defaults.get(key))
            if not _same(wanted, recorded):
                raise ValueError(
                    f"`{where}.objective_config.{key}` = {wanted!r}, but `{where}.model.init_from` = {shown!r} was "
                    f"pretrained with {key}={recorded!r} (its `pretraining_config`): a continued model keeps its "
                    f"objective's settings. Drop the key (or set it to {recorded!r})."
                )
    return overrides


def _same(a: Any, b: Any) -> bool:
    """Config values equal as YAML and JSON write them (lists and tuples alike, 1 == 1.0)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _require_positive(section: Any, where: str, *names: str) -> None:
    for name in names:
        if not getattr(section, name) > 0:
            raise ValueError(f"`{where}.{name}` must be > 0, got {getattr(section, name)!r}.")


def _require_non_negative(section: Any, where: str, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 0:
            raise ValueError(f"`{where}.{name}` must be >= 0, got {getattr(section, name)!r}.")


def to_dict(config: RunConfig) -> dict:
    """The config as plain data (for YAML, JSON and trackers)."""
    return copy.deepcopy(dataclasses.asdict(config))


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists become strings (TensorBoard hparams take scalars only)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def section_key_lines(cls: type, nested: dict[str, tuple[type, str] | None], prefix: str = "") -> list[str]:
    """`  <section.>key, key, ...` for dataclass `cls` and every section inside it, for `--help`. `nested` maps
    a field that is not itself a dataclass to the section it holds and the prefix shown for it
    (`tasks` -> `(TaskSection, "tasks.<name>.")`), or to None to leave it out."""
    hints, leaves, lines = typing.get_type_hints(cls), [], []
    for f in dataclasses.fields(cls):
        if f.name in nested:
            if nested[f.name] is not None:
                section, shown = nested[f.name]
                lines += section_key_lines(section, nested, shown)
        elif dataclasses.is_dataclass(hints[f.name]):
            lines += section_key_lines(hints[f.name], nested, f"{prefix}{f.name}.")
        else:
            leaves.append(f.name)
    return lines + ([f"  {prefix or '(top level) '}{', '.join(leaves)}"] if leaves else [])


def describe_keys() -> str:
    """Every config key, by section (the `--help` epilog)."""
    lines = ["config keys (documented in mmfm/training/config.py):"]
    lines += section_key_lines(RunConfig, {"tasks": (TaskSection, "tasks.<name>.")})
    lines.append("objectives (tasks.<name>.objective) and their fields (tasks.<name>.objective_config):")
    for name, objective in objectives().items():
        fields = ", ".join(f.name for f in dataclasses.fields(objective.config_class)) or "(none)"
        lines.append(f"  {name} ({objective.modality}): {objective.description}")
        lines.append(f"      {fields}")
    lines.append(
        f"  {' / '.join(BINDING_OBJECTIVES)} (several modalities): bind the towers of tasks.<name>.binding into one "
        "space (MMFMModel, CLIP's or SigLIP's loss)"
    )
    return "\n".join(lines)


def split_command_line(argv: list[str], description: str, epilog: str) -> tuple[str | None, list[str]]:
    """`[--config FILE] [key=value ...]` -> (the config file or shipped name, the overrides); `--help` prints
    `description` and `epilog` (the documented keys). Shared by every recipe.

    `--key=value` is accepted as `key=value`, so Accelerate-style flags also work for run fields.
    """
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=None,
        help="a run YAML or the name of a shipped one (default: the embedded demo recipe)",
    )
    args, rest = parser.parse_known_args(argv)
    overrides = [item.removeprefix("--") for item in rest]
    bad = [item for item in overrides if "=" not in item]
    if bad:
        parser.error(f"unrecognised argument(s) {bad}: overrides are key=value, e.g. training.max_steps=100")
    return args.config, overrides


def parse_command_line(argv: list[str], default: str | Path | None = None) -> RunConfig:
    """`[--config FILE] [key=value ...]` -> a checked `RunConfig` (`default` when no `--config`)."""
    path, overrides = split_command_line(
        argv,
        "mmfm self-supervised pretraining. Fields are overridden with key=value, e.g. "
        "training.max_steps=100 training.learning_rate=3e-4.",
        describe_keys(),
    )
    return load_config(path, overrides, default=default)


__all__ = [
    "BINDING_OBJECTIVES",
    "LOAD_TIME_FIELDS",
    "OBJECTIVE_FIELDS",
    "BindingSection",
    "CheckpointSection",
    "DataSection",
    "EvaluationSection",
    "LoggingSection",
    "ModelSection",
    "ReplaySection",
    "RunConfig",
    "TaskSection",
    "TrainingSection",
    "check_model_section",
    "check_saved_model",
    "flatten",
    "init_overrides",
    "load_config",
    "parse_command_line",
    "to_dict",
]
