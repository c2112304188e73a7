"""The run folder: what may become one, who may write into it, and the record of the run it holds.

A run folder is marked as mmfm's by `.mmfm-run` when mmfm creates it (or adopts an empty folder), and
only a marked folder is ever deleted (`overwrite_output_dir`). While a run trains, its main process
holds an exclusive `flock` on `.mmfm-lock`, which also records the holder's host and pid: a second run
into the same folder is refused naming them, and a lock left by a crashed run is free again (the
operating system drops a dead process's locks) and is taken over with a note.

`run_config.yaml`, the record that decides whether a later command continues this run or is a different
one, is written atomically (a temporary file renamed) and only once the run has started training, so a
start that fails on a data error leaves nothing that refuses the corrected command. Every checkpoint
carries a copy; a damaged record (emptied or truncated by a crash) is restored from the newest one.

Layout:

    <output_dir>/
        .mmfm-run            marker: this folder belongs to mmfm (JSON: version, created)
        .mmfm-lock           flock of the live run (JSON: host, pid, started)
        run_config.yaml      the run's settings, once it has started
        checkpoints/ logs/ model/ metrics.json loss.png
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

import yaml
from accelerate import Accelerator

from .checkpointing import complete_checkpoints
from .collective import main_process_result
from .config import RunConfig, flatten, to_dict

logger = logging.getLogger(__name__)

MARKER = ".mmfm-run"
LOCK = ".mmfm-lock"
RUN_FILE = "run_config.yaml"
# Fields that may change when a run is continued (longer, with other logging or checkpoint settings).
CONTINUABLE = ("output_dir", "overwrite_output_dir", "training.max_steps", "checkpointing.", "logging.", "hub.")


class RunFolder:
    """The prepared `output_dir` of this run (see `prepare_output_dir`).

    The main process holds the lock until `release` (or its exit); every method is safe to call on every
    process (only the main one touches the file system).
    """

    def __init__(self, config: RunConfig, accelerator: Accelerator, lock_fd: int | None):
        self.path = Path(config.output_dir).expanduser()
        self.config, self.accelerator, self._lock_fd = config, accelerator, lock_fd
        self.started = False

    def record_start(self) -> None:
        """Write `run_config.yaml` (atomically): from now on this folder holds this run."""
        self.started = True
        if self.accelerator.is_main_process:
            write_atomically(self.path / RUN_FILE, run_config_text(self.config))

    def ensure(self) -> None:
        """Recreate the marker, lock and record if the folder was deleted or moved while the run trained,
        so what is saved next lands in a folder the same command recognises."""
        if not self.accelerator.is_main_process or (self.path / MARKER).is_file():
            return
        logger.warning(
            "The run folder %s (or its %s marker) disappeared while the run was training (deleted or moved). "
            "Recreating it: the run's state is in memory and the next checkpoint goes there.", self.path, MARKER,
        )  # fmt: skip
        self.path.mkdir(parents=True, exist_ok=True)
        write_marker(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._lock_fd = acquire_lock(self.path)
        if self.started:
            write_atomically(self.path / RUN_FILE, run_config_text(self.config))

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock; the file stays (see module docstring)
            self._lock_fd = None


# ---------------------------------------------------------------------------------------------- preparing


def prepare_output_dir(config: RunConfig, accelerator: Accelerator) -> RunFolder:
    """Make `output_dir` this run's folder: a new or empty one, or one holding this same run (continued).

    The main process checks and changes the file system; its verdict is shared, so every process raises
    the same error (no process is left waiting at a barrier).

    Raises:
        ValueError: an unsafe folder (empty path, the file system root, the home folder, the current
            folder or one of its parents), a folder mmfm did not create, a folder another live run holds,
            a different run (the differing fields listed), or checkpoints while `checkpointing.resume` is
            `none`.
    """
    lock_fd = main_process_result(accelerator, lambda: _prepare(config))
    return RunFolder(config, accelerator, lock_fd if accelerator.is_main_process else None)


def _prepare(config: RunConfig) -> int:
    """`prepare_output_dir` on the main process: the checks and changes; returns the held lock's descriptor.

    Raises:
        ValueError: as `prepare_output_dir` (a file system error too, with its type named).
    """
    try:
        return _prepare_folder(config)
    except OSError as err:
        raise ValueError(f"{type(err).__name__}: {err}") from err


def _prepare_folder(config: RunConfig) -> int:
    out = check_safe_output_dir(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`output_dir` {out} is a file, not a folder: choose a folder path.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        if not (out / RUN_FILE).is_file():
            raise ValueError(
                f"`output_dir` {out} is not empty and was not created by mmfm (no {MARKER} marker). mmfm "
                "only writes into, or deletes (`overwrite_output_dir`), folders it created: choose a new or "
                "empty folder."
            )
        write_marker(out)  # a run folder of an mmfm version from before the marker: adopt it
    out.mkdir(parents=True, exist_ok=True)
    lock_fd = acquire_lock(out)
    try:
        if config.overwrite_output_dir:
            _empty_run_folder(out)
        write_marker(out)
        _check_same_run(config, out)
    except BaseException:
        os.close(lock_fd)
        raise
    return lock_fd


def check_safe_output_dir(output_dir: str) -> Path:
    """`output_dir` as an absolute path, unless it is a folder no run may own.

    Raises:
        ValueError: empty, the file system root, the home folder, the current folder or one of its parents.
    """
    if not str(output_dir).strip():
        raise ValueError("`output_dir` is empty: name the run folder, e.g. output_dir=outputs/my_run.")
    out = Path(output_dir).expanduser().resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    unsafe = {out.anchor and Path(out.anchor): "the file system root", home: "your home folder"}
    reason = unsafe.get(out) or (
        "the current folder"
        if out == cwd
        else "a parent of the current folder"
        if out in cwd.parents
        else None
    )
    if reason:
        raise ValueError(
            f"`output_dir` {output_dir!r} is {reason} ({out}); a run folder holds only the run (and "
            "`overwrite_output_dir` deletes it): choose a subfolder, e.g. output_dir=outputs/my_run."
        )
    return out


def _empty_run_folder(out: Path) -> None:
    """Delete the run in `out` (a marked folder), keeping the lock this process holds."""
    for child in out.iterdir():
        if child.name == LOCK:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    logger.info("overwrite_output_dir: deleted the previous run in %s.", out)


def _check_same_run(config: RunConfig, out: Path) -> None:
    saved = read_run_config(out)
    if saved is None:
        return  # a new folder, or a start that failed before training: nothing to continue
    differing = run_differences(saved, to_dict(config))
    if differing:
        raise ValueError(
            f"`output_dir` {out} holds a different run (fields that differ: {differing}). Choose another "
            "`output_dir`, or set `overwrite_output_dir=true` to delete that run and its checkpoints."
        )
    if config.checkpointing.resume == "none" and complete_checkpoints(out / "checkpoints"):
        raise ValueError(
            f"`output_dir` {out} holds checkpoints of this run but `checkpointing.resume` is none: set "
            "`checkpointing.resume=auto` to continue it or `overwrite_output_dir=true` to start over."
        )


def read_run_config(out: Path) -> dict | None:
    """The saved settings of the run in `out`; a damaged `run_config.yaml` is restored from the newest
    checkpoint's copy (with a warning). None when the run never started (no record, no checkpoint).

    Raises:
        ValueError: the record is damaged or missing while checkpoints exist, and none holds a copy.
    """
    run_file = out / RUN_FILE
    saved, problem = _parse_run_config(run_file) if run_file.exists() else (None, "missing")
    if saved is not None:
        return saved
    checkpoints = complete_checkpoints(out / "checkpoints")
    if problem == "missing" and not checkpoints:
        return None
    for checkpoint in reversed(checkpoints):
        copy, _ = _parse_run_config(checkpoint / RUN_FILE)
        if copy is not None:
            logger.warning(
                "%s is %s; restored it from %s.", run_file, problem, checkpoint / RUN_FILE
            )  # fmt: skip
            write_atomically(run_file, (checkpoint / RUN_FILE).read_text())
            return copy
    if not checkpoints:
        logger.warning("%s is %s and the run has no checkpoint: starting it afresh.", run_file, problem)
        return None
    raise ValueError(
        f"{run_file} is {problem} and no checkpoint under {out / 'checkpoints'} holds a copy. If the "
        f"checkpoints are of this same run, delete {run_file} and run the same command to continue them."
    )


def _parse_run_config(path: Path) -> tuple[dict | None, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError) as err:
        return None, f"unreadable ({err})"
    if not text.strip():
        return None, "empty"
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return None, f"damaged ({str(err).splitlines()[0]})"
    if not isinstance(tree, dict) or "tasks" not in tree or "training" not in tree:
        return None, "damaged (not a whole run configuration)"
    return tree, ""


def run_differences(saved: dict, current: dict) -> list[str]:
    """Fields (dotted) that differ between two runs, leaving out those a continued run may change."""
    saved_flat, current_flat = flatten(saved), flatten(current)
    keys = sorted(set(saved_flat) | set(current_flat))
    return [
        k for k in keys
        if saved_flat.get(k) != current_flat.get(k) and not any(k == c or k.startswith(c) for c in CONTINUABLE)
        and not k.endswith(".data.num_workers")
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- files


def run_config_text(config: RunConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def write_marker(out: Path) -> None:
    if not (out / MARKER).is_file():
        from .. import __version__

        write_atomically(out / MARKER, json.dumps({"mmfm": __version__, "created": time.time()}) + "\n")


def acquire_lock(out: Path) -> int:
    """Hold `out/.mmfm-lock` (flock, exclusive) for this process; returns its file descriptor.

    Raises:
        ValueError: another live process holds it (its host and pid named).
    """
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            logger.warning(
                "The file system of %s does not support locks (%s): a second run into this folder would not be "
                "refused; start one run per folder.", out, err,
            )  # fmt: skip
            return fd
        holder = _read_holder(fd)
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise ValueError(
            f"`output_dir` {out} is in use by another run ({holder}). Wait for it to finish or stop it, or "
            "choose another `output_dir`."
        ) from None
    previous = _read_holder(fd)
    if previous != "unknown holder":
        logger.info(
            "Took over the lock of %s from a run that ended without releasing it (%s).", out, previous
        )
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return fd


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
    except (ValueError, KeyError, TypeError, OSError):
        return "unknown holder"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, flushed and renamed: a crash
    leaves the old file or the new one, never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "CONTINUABLE",
    "LOCK",
    "MARKER",
    "RUN_FILE",
    "RunFolder",
    "check_safe_output_dir",
    "prepare_output_dir",
    "read_run_config",
    "run_config_text",
    "run_differences",
    "write_atomically",
]
