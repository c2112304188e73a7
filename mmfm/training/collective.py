"""Decisions every process of a run must share, so that an error on one process is raised on all of them
instead of leaving the others waiting at the next collective until it times out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

T = TypeVar("T")


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """Whether `flag` holds on any process (one small all-reduce; every process must call it)."""
    if accelerator.num_processes == 1:
        return flag
    total = accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), reduction="sum")
    return bool(total.item() > 0)


def main_process_result(
    accelerator: Accelerator,
    compute: Callable[[], T],
    errors: tuple[type[BaseException], ...] = (ValueError,),
) -> T:
    """`compute()` run on the main process only; its result, or the same error (one of `errors`), on every
    process. Every process must call this (the result is broadcast, so it must pickle)."""
    outcome: list[Any] = [None]
    error: BaseException | None = None
    if accelerator.is_main_process:
        try:
            outcome[0] = ("result", compute())
        except errors as err:
            error, outcome[0] = err, ("error", err)
    if accelerator.num_processes > 1:
        broadcast_object_list(outcome)
    kind, value = outcome[0]
    if kind == "error":
        raise error if error is not None else value
    return value


__all__ = ["any_process", "main_process_result"]
