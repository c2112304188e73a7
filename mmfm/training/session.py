"""The frame every recipe runs in: the Accelerator, logging, stop signals and the run folder on the way in,
the folder's lock and the signal handlers released on the way out, and the exit of a run that was stopped."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from .config import RunConfig
from .run_folder import RunFolder, prepare_output_dir
from .setup import build_accelerator
from .signals import handle_stop_signals
from .trainer import Trainer


@contextmanager
def recipe_session(config: RunConfig, launcher_pid: int | None) -> Iterator[tuple[Accelerator, RunFolder]]:
    """`(accelerator, run folder)` for a checked run config: INFO logging on the main process; SIGTERM/SIGINT
    stop every process after the same step with a checkpoint (exit 143/130, `mmfm.training.signals`); a fresh
    run folder, or the same run to continue, held by this run until the block ends.

    `launcher_pid`: the parent's pid, read when the recipe started (before its slow imports).
    """
    accelerator = build_accelerator(config)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    stop = handle_stop_signals(launcher_pid)
    run_folder = prepare_output_dir(config, accelerator)
    try:
        yield accelerator, run_folder
    finally:
        run_folder.release()
        stop.uninstall()


def seed_run(config: RunConfig) -> None:
    """The seed of every process (`seed`, offset per process by Accelerate), and deterministic kernels when
    `training.deterministic` asks for them."""
    set_seed(config.seed, device_specific=True)
    if config.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses determinism without it
        torch.use_deterministic_algorithms(True)


def exit_if_stopped(trainer: Trainer, finished: bool, logger: logging.Logger) -> None:
    """After `trainer.train()`: when a signal stopped it (`finished` False), end the trackers, say where the
    checkpoint is and exit with 128 + the signal (143 SIGTERM, 130 SIGINT); the same command continues."""
    if finished:
        return
    trainer.accelerator.end_training()
    if trainer.accelerator.is_main_process:
        logger.warning(
            "Stopped by %s after step %d, saved in %s/checkpoints. Run the same command to continue.",
            trainer.stopped_by.name, trainer.step, trainer.config.output_dir,
        )  # fmt: skip
    sys.exit(128 + trainer.stopped_by)


__all__ = ["exit_if_stopped", "recipe_session", "seed_run"]
