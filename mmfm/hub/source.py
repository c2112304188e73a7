"""What `mmfm-publish` is pointed at: a run folder, a model folder (an export) or a PEFT adapter folder, read
into one `PublishSource` that the card and the upload use.

    run folder       <run>/.mmfm-run, run_config.yaml, metrics.json, loss.png, model/ (model/<task>/ per task)
    model folder     config.json (+ weights, model code, processor files)
    adapter folder   adapter_config.json (+ adapter weights); `base_model_name_or_path` names its base

A model or adapter folder that sits in a run folder (`<run>/model`, `<run>/model/<task>`) brings that run's
record along (metrics, hyperparameters, loss plot), so publishing `<run>/model` and `<run>` give the same card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..training.run_folder import MARKER, RUN_FILE

CONFIG_FILE = "config.json"
ADAPTER_FILE = "adapter_config.json"
METRICS_FILE = "metrics.json"
LOSS_PLOT = "loss.png"
EXPORT_DIR = "model"
# A fine-tuning run (recipes/finetune.py, `finetune` in its run config) exports a PEFT adapter and/or a full
# (or merged) model next to each other.
FINETUNE_EXPORTS = ("adapter", "model")


@dataclass
class PublishSource:
    """A folder to publish and what is known about how it was made.

    Attributes:
        kind: `run`, `model` or `adapter` (what the user pointed at; a run resolves to its export).
        folder: the folder whose files are uploaded (an export or an adapter).
        run_dir: the run folder the export came from, when known.
        task: the run's task whose export this is (None outside a run).
        config: the model's `config.json` (for an adapter: its base model's, when the base is a local folder).
        adapter: the adapter's `adapter_config.json` (None for a model).
        run_config: the run's `run_config.yaml` as plain data (None outside a run).
        metrics: the run's `metrics.json` (None outside a run, or before the run finished).
    """

    kind: str
    folder: Path
    run_dir: Path | None = None
    task: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, Any] | None = None
    run_config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None

    @property
    def loss_plot(self) -> Path | None:
        plot = self.run_dir / LOSS_PLOT if self.run_dir is not None else None
        return plot if plot is not None and plot.is_file() else None

    @property
    def finetune_section(self) -> dict[str, Any]:
        """A fine-tuning run's `finetune` section (empty otherwise)."""
        return (self.run_config or {}).get("finetune") or {}

    @property
    def data_section(self) -> dict[str, Any]:
        """What the model trained on: the task's `data`, or a fine-tuning run's `data` (empty outside a run)."""
        if self.finetune_section:
            return (self.run_config or {}).get("data") or {}
        return self.task_section.get("data") or {}

    @property
    def task_section(self) -> dict[str, Any]:
        """The run config's `tasks.<task>` (empty outside a run)."""
        tasks = (self.run_config or {}).get("tasks") or {}
        return tasks.get(self.task) or {} if self.task else {}


def resolve_source(path: str | Path, task: str | None = None) -> PublishSource:
    """Read a run, model or adapter folder into a `PublishSource`.

    Args:
        path: the folder to publish.
        task: a multi-task run's task whose export is published (`model/<task>`); required there.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is none of the three kinds of folder (the message says what each holds), a run
            without an export, or a multi-task run without (or with an unknown) `task`.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: give a run folder, a model folder or an adapter folder."
        )
    if (folder / ADAPTER_FILE).is_file():
        return _with_run(PublishSource("adapter", folder, adapter=_read_json(folder / ADAPTER_FILE)), task)
    if (folder / CONFIG_FILE).is_file():
        return _with_run(PublishSource("model", folder, config=_read_json(folder / CONFIG_FILE)), task)
    if _is_run(folder):
        return _from_run(folder, task)
    raise ValueError(
        f"{str(path)!r} is not something mmfm-publish can publish. Expected one of: a run folder (written by "
        f"`accelerate launch recipes/pretrain.py`, with {MARKER}, {RUN_FILE} and the export in {EXPORT_DIR}/), a model "
        f"folder (with {CONFIG_FILE}, as written by `save_pretrained`), or a PEFT adapter folder (with {ADAPTER_FILE})."
    )


def _is_run(folder: Path) -> bool:
    return (folder / MARKER).is_file() or (folder / RUN_FILE).is_file()


def _from_run(run_dir: Path, task: str | None) -> PublishSource:
    exports = run_exports(run_dir)
    if not exports:
        raise ValueError(
            f"The run folder {str(run_dir)!r} has no export in {EXPORT_DIR}/ (no {CONFIG_FILE} or {ADAPTER_FILE}): the "
            "run has not finished. Run the same training command again to finish and export it, then publish."
        )
    if task is None and len(exports) > 1:
        raise ValueError(
            f"The run folder {str(run_dir)!r} exports several models ({', '.join(sorted(exports))}): choose the one to "
            f"publish with `--task` (e.g. `--task {min(exports)}`), or publish its folder directly."
        )
    if task is not None and task not in exports:
        raise ValueError(
            f"`--task` {task!r} is not one of the models the run {str(run_dir)!r} exports: {sorted(exports)}."
        )
    name = task if task is not None else next(iter(exports))
    source = resolve_source(exports[name])
    return source if source.run_dir is not None else _attach(source, run_dir, name)


def run_exports(run_dir: Path) -> dict[str, Path]:
    """`{name: export folder}` of a run, from its layout (a moved run's recorded paths are stale): a pretraining
    run's `model/` (named by its task) or `model/<task>/`; a fine-tuning run's `adapter/` and `model/`."""
    run_config = _read_run_config(run_dir) or {}
    if "finetune" in run_config:
        return {name: run_dir / name for name in FINETUNE_EXPORTS if _is_model(run_dir / name)}
    export = run_dir / EXPORT_DIR
    if _is_model(export):
        metrics = _read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else {}
        names = list(run_config.get("tasks") or {}) or list(metrics.get("exported") or {}) or [EXPORT_DIR]
        return {names[0]: export}
    if export.is_dir():
        return {sub.name: sub for sub in sorted(export.iterdir()) if sub.is_dir() and _is_model(sub)}
    return {}


def _is_model(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() or (folder / ADAPTER_FILE).is_file()


def _with_run(source: PublishSource, task: str | None) -> PublishSource:
    """Attach the run folder `source.folder` was exported into (`<run>/model`, `<run>/model/<task>`,
    `<run>/adapter`)."""
    run_dir, name = None, None
    for candidate in (source.folder.parent, source.folder.parent.parent):
        if _is_run(candidate):
            names = [n for n, folder in run_exports(candidate).items() if folder.resolve() == source.folder]
            if names:
                run_dir, name = candidate, names[0]
                break
    if task is not None and task != name:
        raise ValueError(
            f"`--task` {task!r} applies to a multi-task run folder; {str(source.folder)!r} is one model: leave `--task` "
            "out, or give the run folder."
        )
    return _attach(source, run_dir, name) if run_dir is not None else _with_base_config(source)


def _attach(source: PublishSource, run_dir: Path, task: str | None) -> PublishSource:
    source.run_dir, source.task = run_dir, task
    source.run_config = _read_run_config(run_dir)
    source.metrics = _read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else None
    return _with_base_config(source)


def _with_base_config(source: PublishSource) -> PublishSource:
    """An adapter's base model config, when its base is a local folder (it decides the pipeline tag)."""
    if source.adapter is not None and not source.config:
        base = Path(str(source.adapter.get("base_model_name_or_path") or "")).expanduser()
        if str(base) and (base / CONFIG_FILE).is_file():
            source.config = _read_json(base / CONFIG_FILE)
    return source


def _read_run_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise TypeError(
            f"{str(path)!r} does not hold a run config (a YAML mapping); the run folder is damaged."
        )
    return data


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); the folder is damaged.") from None
    if not isinstance(data, dict):
        raise TypeError(f"{str(path)!r} does not hold a JSON object; the folder is damaged.")
    return data


__all__ = ["PublishSource", "resolve_source", "run_exports"]
