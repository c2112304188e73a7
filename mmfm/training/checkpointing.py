"""Atomic, verified, resumable checkpoints: `accelerator.save_state` into a temporary folder, a manifest of
every file's size and checksum written last, and a rename that commits it.

Layout under `<output_dir>/checkpoints/`:

    step_00000100/                      a committed checkpoint (the rename is the commit)
        model.safetensors | pytorch_model/ (DeepSpeed), optimizer.bin,
        random_states_<rank>.pkl        Accelerate's state: model, optimizer, RNG per process
        trainer_state_<rank>.json       step, data positions, counters, LR schedule of that process
        history.json                    logged metrics so far (main process)
        run_config.yaml                 the run's settings (restores a damaged `<output_dir>/run_config.yaml`)
        manifest.json                   size and SHA-256 of every file above, written last
    .tmp-step_00000200/                 being written; ignored by resume and removed by the next save

A crash while saving leaves only a `.tmp-` folder; a full disk removes it and stops with a message, so the
previous checkpoint stays the newest. Resuming verifies the manifest and falls back to the newest intact
checkpoint, naming what was damaged. Nothing executes from a checkpoint: the schedule and the trainer state
are JSON, weights safetensors, and the few pickles Accelerate and DeepSpeed write (optimizer, RNG and
ZeRO partitions) are loaded with torch's `weights_only` unpickler, which admits tensors and plain data
only (`safe_loading`). The folder is assumed to be on a file system every process sees (as Accelerate's
`save_state` assumes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from .collective import any_process, main_process_result

logger = logging.getLogger(__name__)

STEP_FOLDER = re.compile(r"^step_(\d{8})$")
TMP_PREFIX = ".tmp-"
MANIFEST = "manifest.json"
RUN_CONFIG = "run_config.yaml"


class CheckpointError(RuntimeError):
    """A checkpoint could not be saved (the previous one is intact) or none can be resumed from."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Committed checkpoint folders under `root`, oldest first (not yet verified: see `verify_checkpoint`)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_FOLDER.match(p.name) and _has_state(p)]
    return sorted(found, key=lambda p: int(STEP_FOLDER.match(p.name).group(1)))


def _has_state(folder: Path) -> bool:
    return (folder / "trainer_state_0.json").is_file() or (folder / MANIFEST).is_file()


# ---------------------------------------------------------------------------------------------- saving


def save_checkpoint(
    accelerator: Accelerator, root: str | os.PathLike, step: int, trainer_state: dict[str, Any],
    history: list[dict], keep_last: int, run_config: str | None = None,
) -> Path:  # fmt: skip
    """Save the full training state of every process for `step`; keep the newest `keep_last` checkpoints.

    Every process must call this (DeepSpeed and Accelerate save collectively). `trainer_state` is this
    process's own state (data positions differ per process); `history` and `run_config` (the text of
    `run_config.yaml`) are written by the main process.

    Raises:
        CheckpointError: a write failed on some process (e.g. a full disk); the partial checkpoint is
            removed, so the previous one stays the newest, and the message says how to continue.
    """
    root = Path(root)
    final = root / checkpoint_name(step)
    tmp = root / (TMP_PREFIX + final.name)
    failure: OSError | None = None
    try:
        if accelerator.is_main_process:
            for stale in root.glob(TMP_PREFIX + "*") if root.is_dir() else ():
                shutil.rmtree(stale, ignore_errors=True)  # an interrupted save
            tmp.mkdir(parents=True)
    except OSError as err:
        failure = err
    if not any_process(accelerator, failure is not None):
        try:
            accelerator.save_state(str(tmp))
            _write_json(tmp / f"trainer_state_{accelerator.process_index}.json", trainer_state)
            if accelerator.is_main_process:
                _write_json(tmp / "history.json", history)
                if run_config is not None:
                    (tmp / RUN_CONFIG).write_text(run_config)
        except OSError as err:
            failure = err
    # Every process has written its files (or failed) once all agree; only then is the manifest written.
    if not any_process(accelerator, failure is not None) and accelerator.is_main_process:
        try:
            _write_json(tmp / MANIFEST, {"step": step, "files": _describe_files(tmp)})
        except OSError as err:
            failure = err
    if any_process(accelerator, failure is not None):
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(_save_failure_message(root, step, failure))
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again (e.g. over a damaged copy): swap, then delete
            aside = root / (TMP_PREFIX + "old-" + final.name)
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(final, aside)
            os.replace(tmp, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, final)
        for old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def _save_failure_message(root: Path, step: int, failure: OSError | None) -> str:
    previous = complete_checkpoints(root)
    cause = (
        f"{type(failure).__name__}: {failure}" if failure is not None else "a write failed on another process"
    )
    kept = (
        f"The previous checkpoint {previous[-1]} is intact" if previous else "There is no earlier checkpoint"
    )
    return (
        f"Could not save the checkpoint of step {step} under {root} ({cause}); the partial copy was removed. "
        f"{kept}: free disk space (or fix the folder's permissions) and run the same command to continue."
    )


def _describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------- checking


def verify_checkpoint(folder: str | os.PathLike) -> list[str]:
    """What is wrong with checkpoint `folder`: missing, truncated or changed files against its manifest
    (empty when it is intact)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return [
            f"it has no {MANIFEST} (its save did not finish, or an mmfm version without manifests wrote it)"
        ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return [f"its {MANIFEST} is damaged ({type(err).__name__})"]
    problems = []
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(
                f"{name} is truncated or changed ({path.stat().st_size} bytes, {expected['size']} saved)"
            )
        elif _sha256(path) != expected["sha256"]:
            problems.append(f"{name} is damaged (its checksum differs from the saved one)")
    return problems


def newest_intact_checkpoint(accelerator: Accelerator, root: str | os.PathLike) -> Path | None:
    """The newest checkpoint under `root` whose files match its manifest (None when there is no checkpoint),
    found by the main process and shared with the others. Damaged newer ones are skipped with a warning that
    names what is wrong.

    Raises:
        CheckpointError: there are checkpoints but none is intact.
    """

    def newest_intact() -> str | None:
        found = complete_checkpoints(root)
        damaged = []
        for folder in reversed(found):
            problems = verify_checkpoint(folder)
            if not problems:
                return str(folder)
            damaged.append(f"{folder.name}: {'; '.join(problems)}")
            logger.warning(
                "Checkpoint %s is damaged (%s); trying the one before it.", folder, "; ".join(problems)
            )
        if found:
            raise CheckpointError(
                f"No intact checkpoint under {root} to resume from ({' | '.join(damaged)}). Resume from another "
                "copy with `checkpointing.resume=<folder>`, or start over with `overwrite_output_dir=true`."
            )
        return None

    # The same folder, or the same error, on every process.
    chosen = main_process_result(accelerator, newest_intact, errors=(CheckpointError,))
    return Path(chosen) if chosen is not None else None


# ---------------------------------------------------------------------------------------------- loading


def load_checkpoint(accelerator: Accelerator, folder: str | os.PathLike) -> tuple[dict[str, Any], list[dict]]:
    """Restore Accelerate's state from `folder` (verified against its manifest first); returns (this
    process's trainer state, history).

    Raises:
        FileNotFoundError: `folder` is not a checkpoint, or was saved by fewer processes.
        CheckpointError: its files do not match its manifest (what is wrong is named).
    """
    folder = Path(folder)
    if not _has_state(folder):
        raise FileNotFoundError(
            f"{folder} is not an mmfm checkpoint (no {MANIFEST}); pass a `step_*` folder under "
            "<output_dir>/checkpoints or `checkpointing.resume=auto`."
        )
    problems = verify_checkpoint(folder)
    if problems:
        raise CheckpointError(
            f"Checkpoint {folder} is damaged: {'; '.join(problems)}. Resume from another checkpoint "
            "(`checkpointing.resume=auto` picks the newest intact one)."
        )
    state_file = folder / f"trainer_state_{accelerator.process_index}.json"
    if not state_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no state for process {accelerator.process_index}: it was saved by fewer processes. "
            "Resume with the number of processes that saved it."
        )
    with safe_loading():
        _check_random_states(folder, accelerator.process_index)
        try:
            accelerator.load_state(str(folder))
        except pickle.UnpicklingError as err:
            raise CheckpointError(
                f"Checkpoint {folder} holds a pickle with objects other than tensors and plain data; it was not "
                f"loaded, since loading it could run code ({str(err).splitlines()[-1][:300]}). Resume only from "
                "checkpoints mmfm wrote, or start over."
            ) from None
    history_file = folder / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    return json.loads(state_file.read_text()), history


def _check_random_states(folder: Path, process_index: int) -> None:
    """Accelerate swallows any error loading the RNG file (and resumes with other random numbers, no longer
    exactly): read it first, so a damaged or unsafe one stops the resume with its name."""
    from accelerate.utils import load

    path = folder / f"random_states_{process_index}.pkl"
    if not path.is_file():
        return
    try:
        load(path)
    except Exception as err:  # noqa: BLE001 - any failure means the run could not continue exactly
        raise CheckpointError(
            f"{path} cannot be read safely ({type(err).__name__}: {str(err).splitlines()[0][:200]}); resuming would "
            "draw other random numbers than the interrupted run. Resume from another checkpoint."
        ) from None


@contextlib.contextmanager
def safe_loading() -> Iterator[None]:
    """Every `torch.load` inside uses the `weights_only` unpickler, even where a library asks for the full
    one (DeepSpeed loads its ZeRO files with `weights_only=False`): a crafted pickle fails to load instead
    of running code. The plain types DeepSpeed's files hold are allowed besides tensors."""
    saved = {
        name: os.environ.get(name)
        for name in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    }
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    try:
        with torch.serialization.safe_globals(_deepspeed_safe_globals()):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _deepspeed_safe_globals() -> list[Any]:
    """Plain-data classes DeepSpeed pickles into its checkpoints (enums and config records, no code)."""
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
    except ImportError:
        return []
    return [ZeroStageEnum, LossScaler, DynamicLossScaler, fragment_address]


__all__ = [
    "CheckpointError",
    "checkpoint_name",
    "complete_checkpoints",
    "load_checkpoint",
    "newest_intact_checkpoint",
    "safe_loading",
    "save_checkpoint",
    "verify_checkpoint",
]
