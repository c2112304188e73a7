"""Fault injection for the training tests: a backward pass whose gradients are NaN while the loss stays
finite (what an overflow inside backward does), in this process or in launched ones.

    python tests/training/_faults.py <recipe args>      # the recipe, with NaN gradients on the backward
                                                        # calls listed in MMFM_TEST_NAN_GRADIENT_CALLS
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator


class _NaNGradient(torch.autograd.Function):
    """The identity forward; backward passes NaN on to everything upstream."""

    @staticmethod
    def forward(ctx, loss):
        return loss.view_as(loss)

    @staticmethod
    def backward(ctx, grad):
        return grad * math.nan


def nan_gradients_on(calls: set[int]):
    """Patch `Accelerator.backward` so the backward calls numbered (1-based) in `calls` give NaN gradients;
    returns the unpatching function. Works under DDP and DeepSpeed (the NaN flows through their hooks)."""
    count, backward = [0], Accelerator.backward

    @functools.wraps(backward)
    def backward_with_overflow(self, loss, **kwargs):
        count[0] += 1
        return backward(self, _NaNGradient.apply(loss) if count[0] in calls else loss, **kwargs)

    Accelerator.backward = backward_with_overflow
    return lambda: setattr(Accelerator, "backward", backward)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.training._runs import _load_recipe

    nan_gradients_on({int(n) for n in os.environ.get("MMFM_TEST_NAN_GRADIENT_CALLS", "").split(",") if n})
    _load_recipe().main(sys.argv[1:])
