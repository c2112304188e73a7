"""Atomic, resumable checkpoints: `accelerator.save_state` into a temporary folder, renamed when complete.

Layout under `<output_dir>/checkpoints/`:

    step_00000100/                      a complete checkpoint (the rename is the commit)
        model.safetensors | pytorch_model/ (DeepSpeed), optimizer.bin, scheduler.bin,
        random_states_<rank>.pkl        Accelerate's state: model, optimizer, scheduler, RNG per process
        trainer_state_<rank>.json       step, data positions, counters of that process
        history.json                    logged metrics so far (main process)
    .tmp-step_00000200/                 being written; ignored by resume and removed by the next save

A crash while saving leaves only a `.tmp-` folder behind, so the newest `step_*` folder is always whole.
The folder is assumed to be on a file system every process sees (as Accelerate's `save_state` assumes).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

logger = logging.getLogger(__name__)

STEP_FOLDER = re.compile(r"^step_(\d{8})$")
TMP_PREFIX = ".tmp-"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_FOLDER.match(p.name) and _has_state(p)]
    return sorted(found, key=lambda p: int(STEP_FOLDER.match(p.name).group(1)))


def _has_state(folder: Path) -> bool:
    return (folder / "trainer_state_0.json").is_file()


def save_checkpoint(
    accelerator: Accelerator, root: str | os.PathLike, step: int, trainer_state: dict[str, Any],
    history: list[dict], keep_last: int,
) -> Path:  # fmt: skip
    """Save the full training state of every process for `step`; keep the newest `keep_last` checkpoints.

    Every process must call this (DeepSpeed and Accelerate save collectively). `trainer_state` is this
    process's own state (data positions differ per process); `history` is written by the main process.
    """
    root = Path(root)
    final = root / checkpoint_name(step)
    tmp = root / (TMP_PREFIX + final.name)
    if accelerator.is_main_process:
        for stale in root.glob(TMP_PREFIX + "*") if root.is_dir() else ():
            shutil.rmtree(stale, ignore_errors=True)  # an interrupted save
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    _write_json(tmp / f"trainer_state_{accelerator.process_index}.json", trainer_state)
    if accelerator.is_main_process:
        _write_json(tmp / "history.json", history)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again (e.g. the end of a resumed run)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("Saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, folder: str | os.PathLike) -> tuple[dict[str, Any], list[dict]]:
    """Restore Accelerate's state from `folder`; returns (this process's trainer state, history).

    Raises:
        FileNotFoundError: `folder` is not a complete checkpoint, or was saved by fewer processes.
    """
    folder = Path(folder)
    state_file = folder / f"trainer_state_{accelerator.process_index}.json"
    if not _has_state(folder):
        raise FileNotFoundError(
            f"{folder} is not a complete mmfm checkpoint (no trainer_state_0.json); pass a `step_*` folder "
            "under <output_dir>/checkpoints or `checkpointing.resume=auto`."
        )
    if not state_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no state for process {accelerator.process_index}: it was saved by fewer processes. "
            "Resume with the number of processes that saved it."
        )
    accelerator.load_state(str(folder))
    history_file = folder / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    return json.loads(state_file.read_text()), history


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


__all__ = ["checkpoint_name", "complete_checkpoints", "load_checkpoint", "save_checkpoint"]
