"""Throughput, FLOPs, model FLOP utilisation (MFU) and peak memory of a training run.

FLOPs per step are measured, not estimated from a formula: `count_flops` runs one real forward+backward
under `torch.utils.flop_counter.FlopCounterMode`, which counts matmuls, convolutions and attention (so
work skipped by design, such as MAE's dropped tokens, is not counted). MFU is the achieved FLOP/s of one
device divided by its dense datasheet peak for the precision the run computes in (PaLM, Chowdhery et al.
2022, appendix B).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils.flop_counter import FlopCounterMode

logger = logging.getLogger(__name__)

T = TypeVar("T")

PEAK_TFLOPS_ENV = "MMFM_PEAK_TFLOPS"

# Dense (no 2:4 sparsity) peak TFLOP/s per torch device, from the vendors' datasheets and architecture
# whitepapers (NVIDIA H100/H200/H100 NVL/A100/A10/L40S/L40/L4/V100/T4 datasheets, Hopper, Ada and GA102
# whitepapers; AMD Instinct MI300X/MI250X datasheets). Datasheets quote the sparse figure first: the
# dense one is half of it. GeForce cards use the FP32-accumulate rate, which is what PyTorch uses.
# "fp32" is the TF32 tensor-core peak where the card has one, because PyTorch may route fp32 matmuls
# through TF32 (`torch.backends.cuda.matmul.allow_tf32`); with TF32 off, MFU in fp32 reads low.
# Keys are lowercase fragments of `torch.cuda.get_device_name()`; `lookup_peak_tflops` tries the longest
# first and requires word boundaries, so "h100 pcie" wins over "h100" and "a10" never matches "a100".
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "h200 nvl": {"bf16": 835.5, "fp16": 835.5, "fp32": 417.5},
    "h200": {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7},  # SXM; also GH200 (same H100-class SMs)
    "h100 nvl": {"bf16": 835.5, "fp16": 835.5, "fp32": 417.5},
    "h100 pcie": {"bf16": 756.0, "fp16": 756.0, "fp32": 378.0},
    "h100": {"bf16": 989.4, "fp16": 989.4, "fp32": 494.7},  # SXM5, named "NVIDIA H100 80GB HBM3"
    "a100": {"bf16": 312.0, "fp16": 312.0, "fp32": 156.0},  # SXM4 and PCIe share the peak
    # A10G (AWS G5) has no public NVIDIA datasheet; AWS's figures: tensor cores at half the A10's rate.
    "a10g": {"bf16": 70.0, "fp16": 70.0, "fp32": 35.0},
    "a10": {"bf16": 125.0, "fp16": 125.0, "fp32": 62.5},
    "l40s": {"bf16": 362.05, "fp16": 362.05, "fp32": 183.0},
    "l40": {"bf16": 181.0, "fp16": 181.0, "fp32": 90.5},
    "l4": {"bf16": 121.0, "fp16": 121.0, "fp32": 60.0},
    # Volta and Turing have no bf16 tensor cores (PyTorch emulates bf16), so no bf16 peak is given.
    "v100-pcie": {"fp16": 112.0, "fp32": 14.0},
    "v100": {"fp16": 125.0, "fp32": 15.7},  # SXM2
    "t4": {"fp16": 65.0, "fp32": 8.1},
    "rtx 4090": {"bf16": 165.2, "fp16": 165.2, "fp32": 82.6},
    "rtx 3090": {"bf16": 71.0, "fp16": 71.0, "fp32": 35.6},
    # ROCm PyTorch does not use XF32 for fp32 matmuls by default, so fp32 is the FP32 matrix peak.
    "mi300x": {"bf16": 1307.4, "fp16": 1307.4, "fp32": 163.4},
    # Each MI250X package shows up as two torch devices (one per GCD): half the package's 383/95.7.
    "mi250x": {"bf16": 191.5, "fp16": 191.5, "fp32": 47.85},
}

# Accelerate's `mixed_precision` values -> the precision the matmuls run in.
_PRECISION_OF = {"no": "fp32", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "fp8": "bf16"}
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def lookup_peak_tflops(device_name: str, precision: str) -> float | None:
    """Dense peak TFLOP/s of a device from `PEAK_TFLOPS`, or None when the device or precision is unknown.

    Args:
        device_name: what `torch.cuda.get_device_name()` returns, e.g. "NVIDIA H100 PCIe".
        precision: "bf16", "fp16" or "fp32".
    """
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"`precision` must be 'bf16', 'fp16' or 'fp32', got {precision!r}.")
    name = device_name.lower()
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if re.search(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])", name):
            return PEAK_TFLOPS[key].get(precision)
    return None


def peak_flops_per_second(device: torch.device | str, mixed_precision: str) -> float | None:
    """Peak FLOP/s of one device for the precision the run computes in, for MFU.

    The environment variable `MMFM_PEAK_TFLOPS` (TFLOP/s per device) overrides the table on any device,
    e.g. with a peak measured on the card itself.

    Args:
        device: the device the model runs on.
        mixed_precision: Accelerate's setting: "no" (fp32), "bf16", "fp16" or "fp8" (bf16 peak).

    Returns:
        FLOP/s, or None on CPU, MPS or a GPU missing from `PEAK_TFLOPS` (MFU is then not reported).
    """
    if mixed_precision not in _PRECISION_OF:
        raise ValueError(
            f"`mixed_precision` must be one of {sorted(_PRECISION_OF)}, got {mixed_precision!r}."
        )
    override = os.environ.get(PEAK_TFLOPS_ENV)
    if override is not None:
        try:
            return float(override) * 1e12
        except ValueError:
            raise ValueError(
                f"{PEAK_TFLOPS_ENV}={override!r} is not a number: set it to the peak TFLOP/s of one device "
                "(e.g. 989.4) or unset it to use the built-in table."
            ) from None
    device = torch.device(device)
    if device.type != "cuda":  # ROCm devices are "cuda" too
        return None
    precision = _PRECISION_OF[mixed_precision]
    if mixed_precision == "fp8":
        # Only the matmuls Transformer Engine / torchao convert run in fp8; the rest stays bf16, so the
        # bf16 peak is the honest denominator.
        _warn_once("mixed_precision='fp8': MFU is reported against the bf16 peak.")
    name = torch.cuda.get_device_name(device)
    tflops = lookup_peak_tflops(name, precision)
    if tflops is None:
        _warn_once(
            f"No {precision} peak FLOP/s known for GPU {name!r} ({device}), so MFU is not reported: set "
            f"{PEAK_TFLOPS_ENV} to its dense peak TFLOP/s per device."
        )
        return None
    return tflops * 1e12


def count_flops(step: Callable[[], T]) -> tuple[T, int]:
    """Run `step()` and count the FLOPs it performs (a multiply-add is 2 FLOPs).

    Args:
        step: typically one forward and backward of a real batch.

    Returns:
        `(result, flops)`: what `step()` returned and the total FLOPs `FlopCounterMode` counted.
    """
    with FlopCounterMode(display=False) as counter:
        result = step()
    return result, counter.get_total_flops()


def peak_memory_bytes(device: torch.device | str) -> int:
    """Peak memory so far: CUDA's max allocated bytes, or the process's peak resident set size elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        _warn_once("Peak memory is not measured on this platform (no `resource` module): reporting 0.")
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS (getrusage(2) man pages).
    return peak if sys.platform == "darwin" else peak * 1024


class ThroughputMeter:
    """Accumulates per-step time, sample, unit and FLOP counts into throughput and MFU.

    Counts are global (summed over processes and micro-batches of one optimizer step); FLOP/s and MFU are
    per device, so they compare across cluster sizes.

    Args:
        num_processes: devices the global counts are spread over.
        peak_flops_per_device: dense peak FLOP/s of one device (`peak_flops_per_second`); None: no MFU.
        unit_name: what the modality counts ("tokens", "patches", "nodes"), naming f"{unit_name}_per_s".
        warmup: first updates left out of `summary()`, since they include compilation and allocator
            warm-up (with one update per logging window, the first window).
    """

    def __init__(
        self,
        num_processes: int,
        peak_flops_per_device: float | None,
        unit_name: str = "tokens",
        warmup: int = 1,
    ) -> None:
        if num_processes < 1:
            raise ValueError(f"`num_processes` must be >= 1, got {num_processes}.")
        if peak_flops_per_device is not None and not peak_flops_per_device > 0:
            raise ValueError(
                f"`peak_flops_per_device` must be positive or None, got {peak_flops_per_device}."
            )
        if warmup < 0:
            raise ValueError(f"`warmup` must be >= 0, got {warmup}.")
        if not unit_name:
            raise ValueError("`unit_name` must be a non-empty name such as 'tokens' or 'patches'.")
        self.num_processes = num_processes
        self.peak_flops_per_device = peak_flops_per_device
        self.unit_name = unit_name
        self.warmup = warmup
        self._updates: list[tuple[float, int, int, int | None, int]] = []

    def _flop_metrics(self, flops: float, seconds: float) -> dict[str, float]:
        per_device = flops / seconds / self.num_processes
        metrics = {"tflops_per_s_per_device": per_device / 1e12}
        if self.peak_flops_per_device is not None:
            metrics["mfu"] = per_device / self.peak_flops_per_device
        return metrics

    def update(
        self, seconds: float, samples: int, units: int, flops: int | None, steps: int = 1
    ) -> dict[str, float]:
        """Record `steps` optimizer steps (one, or a logging window of several) and return their metrics.

        Args:
            seconds: wall time of the steps.
            samples: global samples of the steps.
            units: global units (tokens, patches, ...) of the steps.
            flops: global FLOPs of the steps, or None when unknown.
            steps: how many optimizer steps the counts cover.

        Returns:
            "step_time_s" (per step), "samples_per_s", f"{unit_name}_per_s"; with FLOPs also
            "flops_per_step" and "tflops_per_s_per_device"; with a known peak also "mfu" (a fraction, 0..1).
        """
        if not seconds > 0:
            raise ValueError(f"`seconds` must be positive, got {seconds}: time the step after it finishes.")
        if steps < 1:
            raise ValueError(f"`steps` must be >= 1, got {steps}.")
        self._updates.append((seconds, samples, units, flops, steps))
        metrics = {
            "step_time_s": seconds / steps,
            "samples_per_s": samples / seconds,
            f"{self.unit_name}_per_s": units / seconds,
        }
        if flops is not None:
            metrics["flops_per_step"] = flops / steps
            metrics.update(self._flop_metrics(flops, seconds))
        return metrics

    def summary(self) -> dict[str, float]:
        """Totals over the updates after warm-up (all updates if there are no others).

        Rates are aggregates (total count / total time), not means of per-step ratios. FLOP keys cover the
        updates whose FLOPs were given and are absent when there were none.
        """
        updates = self._updates[self.warmup :] or self._updates
        if not updates:
            return {"steps_measured": 0}
        seconds = sum(update[0] for update in updates)
        steps = sum(update[4] for update in updates)
        result = {
            "steps_measured": steps,
            "mean_step_time_s": seconds / steps,
            "samples_per_s": sum(update[1] for update in updates) / seconds,
            f"{self.unit_name}_per_s": sum(update[2] for update in updates) / seconds,
        }
        counted = [(update[0], update[3]) for update in updates if update[3] is not None]
        if counted:
            result.update(self._flop_metrics(sum(f for _, f in counted), sum(s for s, _ in counted)))
        return result
