"""Throughput, FLOP counting, MFU peaks, peak memory, loss plots and the units throughput counts, checked
against hand-derived numbers."""

import logging
import math

import pytest
import torch
from torch import nn

from mmfm.modalities import get_modality
from mmfm.models import MMFMGraphConfig
from mmfm.training.metrics import (
    PEAK_TFLOPS,
    PEAK_TFLOPS_ENV,
    ThroughputMeter,
    count_flops,
    lookup_peak_tflops,
    peak_flops_per_second,
    peak_memory_bytes,
)
from mmfm.training.plots import _loss_series, plot_loss_curve

from ._runs import TINY, run_in_process, write_jsonl, write_run_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_count_flops_linear_forward_backward():
    torch.manual_seed(0)
    layer = nn.Linear(64, 32)
    x = torch.randn(8, 64, requires_grad=True)

    def step():
        loss = layer(x).sum()
        loss.backward()
        return loss

    loss, flops = count_flops(step)
    # Forward addmm (8x64 @ 64x32), backward grad_input mm (8x32 @ 32x64) and grad_weight mm
    # (32x8 @ 8x64): three matmuls of 8*64*32 multiply-adds, 2 FLOPs each. The bias gradient is a sum,
    # which FlopCounterMode does not count.
    assert flops == 3 * 2 * 8 * 64 * 32 == 98304
    assert loss.ndim == 0 and layer.weight.grad is not None


def test_count_flops_skips_the_input_gradient_nobody_asked_for():
    layer = nn.Linear(64, 32)
    x = torch.randn(8, 64)  # no requires_grad: autograd never computes grad_input
    _, flops = count_flops(lambda: layer(x).sum().backward())
    assert flops == 2 * 2 * 8 * 64 * 32


def test_throughput_meter_exact_values_and_warmup():
    meter = ThroughputMeter(num_processes=2, peak_flops_per_device=100e12, unit_name="patches", warmup=1)
    # The warm-up step is slow and would dominate the averages if it were counted.
    meter.update(seconds=10.0, samples=64, units=6400, flops=40 * 10**12)
    step = meter.update(seconds=0.5, samples=64, units=6400, flops=40 * 10**12)
    assert step == pytest.approx(
        {
            "step_time_s": 0.5,
            "samples_per_s": 128.0,
            "patches_per_s": 12800.0,
            "flops_per_step": 40e12,
            "tflops_per_s_per_device": 40.0,  # 40e12 FLOPs / 0.5 s / 2 devices
            "mfu": 0.4,  # 40 TFLOP/s of a 100 TFLOP/s peak
        }
    )
    meter.update(seconds=1.5, samples=64, units=6400, flops=40 * 10**12)
    # Two steps after warm-up: 128 samples, 80e12 FLOPs in 2 s. MFU is the aggregate 20/100 = 0.2, not
    # the mean of the per-step ratios (0.4 + 0.133) / 2.
    assert meter.summary() == pytest.approx(
        {
            "steps_measured": 2,
            "mean_step_time_s": 1.0,
            "samples_per_s": 64.0,
            "patches_per_s": 6400.0,
            "tflops_per_s_per_device": 20.0,
            "mfu": 0.2,
        }
    )


def test_throughput_meter_without_flops_or_peak():
    meter = ThroughputMeter(num_processes=1, peak_flops_per_device=None)
    step = meter.update(seconds=2.0, samples=4, units=1024, flops=None)
    assert step == {"step_time_s": 2.0, "samples_per_s": 2.0, "tokens_per_s": 512.0}
    # Only the warm-up step exists, so the summary falls back to it rather than reporting nothing.
    assert meter.summary() == {
        "steps_measured": 1,
        "mean_step_time_s": 2.0,
        "samples_per_s": 2.0,
        "tokens_per_s": 512.0,
    }
    unknown_peak = ThroughputMeter(num_processes=1, peak_flops_per_device=None, warmup=0)
    metrics = unknown_peak.update(seconds=1.0, samples=1, units=1, flops=5 * 10**12)
    assert metrics["tflops_per_s_per_device"] == 5.0 and "mfu" not in metrics
    assert "mfu" not in unknown_peak.summary()
    assert ThroughputMeter(1, None).summary() == {"steps_measured": 0}


def test_throughput_meter_counts_windows_of_several_steps():
    """One update per logging window: step time and FLOPs per step divide by the steps, rates do not."""
    meter = ThroughputMeter(num_processes=2, peak_flops_per_device=1e12, unit_name="patches")
    meter.update(seconds=9.0, samples=90, units=900, flops=int(9e12), steps=3)  # warm-up window
    window = meter.update(seconds=4.0, samples=80, units=800, flops=int(4e12), steps=4)
    assert window["step_time_s"] == 1.0 and window["flops_per_step"] == 1e12
    assert window["samples_per_s"] == 20.0 and window["patches_per_s"] == 200.0
    assert window["tflops_per_s_per_device"] == 0.5 and window["mfu"] == 0.5
    summary = meter.summary()
    assert summary["steps_measured"] == 4 and summary["mean_step_time_s"] == 1.0
    with pytest.raises(ValueError, match="steps"):
        meter.update(seconds=1.0, samples=1, units=1, flops=None, steps=0)


def test_throughput_meter_rejects_bad_input():
    with pytest.raises(ValueError, match="num_processes"):
        ThroughputMeter(num_processes=0, peak_flops_per_device=None)
    with pytest.raises(ValueError, match="seconds"):
        ThroughputMeter(1, None).update(seconds=0.0, samples=1, units=1, flops=None)


def test_lookup_peak_tflops_prefers_the_most_specific_name():
    assert lookup_peak_tflops("NVIDIA H100 PCIe", "bf16") == 756.0
    assert lookup_peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert lookup_peak_tflops("NVIDIA H100 NVL", "fp32") == 417.5
    assert lookup_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert lookup_peak_tflops("NVIDIA A10", "bf16") == 125.0
    assert lookup_peak_tflops("NVIDIA A10G", "bf16") == 70.0
    assert lookup_peak_tflops("NVIDIA L40S", "bf16") == 362.05
    assert lookup_peak_tflops("NVIDIA L4", "bf16") == 121.0
    assert lookup_peak_tflops("Tesla V100-PCIE-16GB", "fp16") == 112.0
    assert lookup_peak_tflops("Tesla V100-SXM2-32GB", "bf16") is None  # no bf16 tensor cores
    assert lookup_peak_tflops("AMD Instinct MI300X", "fp16") == 1307.4
    assert lookup_peak_tflops("Some Future Accelerator", "bf16") is None
    with pytest.raises(ValueError, match="precision"):
        lookup_peak_tflops("NVIDIA H100 PCIe", "int8")


def test_peak_table_is_well_formed():
    for name, peaks in PEAK_TFLOPS.items():
        assert name == name.lower()
        assert set(peaks) <= {"bf16", "fp16", "fp32"} and "fp32" in peaks
        assert all(value > 0 for value in peaks.values())


def test_peak_flops_per_second_on_cpu_and_env_override(monkeypatch):
    monkeypatch.delenv(PEAK_TFLOPS_ENV, raising=False)
    assert peak_flops_per_second("cpu", "bf16") is None
    assert peak_flops_per_second(torch.device("mps"), "no") is None
    with pytest.raises(ValueError, match="mixed_precision"):
        peak_flops_per_second("cpu", "int4")
    monkeypatch.setenv(PEAK_TFLOPS_ENV, "803")
    assert peak_flops_per_second("cpu", "bf16") == 803e12
    monkeypatch.setenv(PEAK_TFLOPS_ENV, "fast")
    with pytest.raises(ValueError, match=PEAK_TFLOPS_ENV):
        peak_flops_per_second("cpu", "bf16")


def test_peak_memory_bytes_on_cpu():
    # A Python process with torch imported holds far more than 10 MiB.
    assert peak_memory_bytes("cpu") > 10 * 2**20


def _history(n: int, nan_at: int | None = None) -> list[dict[str, float]]:
    records = []
    for i in range(n):
        loss = 8.0 * math.exp(-i / 10) + 0.1
        records.append({"step": 10 * i, "loss": loss, "mlm/loss": loss, "mae_loss": loss / 2, "lr": 1e-4})
    if nan_at is not None:
        records[nan_at]["loss"] = float("nan")
        records[nan_at + 1]["loss"] = float("inf")
    return records


def test_plot_loss_curve_writes_png(tmp_path, caplog):
    import matplotlib

    backend = matplotlib.get_backend()
    path = tmp_path / "nested" / "plots" / "loss.png"
    with caplog.at_level(logging.WARNING, logger="mmfm.training.plots"):
        written = plot_loss_curve(_history(60, nan_at=5), path, title="MLM")
    assert written == path
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert "Dropped 2 non-finite value(s) of 'loss'" in caplog.text
    assert matplotlib.get_backend() == backend  # a user's pyplot backend is left alone


def test_plot_loss_curve_short_history(tmp_path):
    path = plot_loss_curve(_history(5), str(tmp_path / "short.png"))
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_loss_series_drops_non_finite_and_ignores_other_keys():
    series = _loss_series(_history(10, nan_at=3))
    assert sorted(series) == ["loss", "mae_loss", "mlm/loss"]
    steps, values = series["loss"]
    assert len(values) == 8 and 30.0 not in steps and 40.0 not in steps
    assert all(math.isfinite(v) for v in values)
    assert len(series["mlm/loss"][1]) == 10


def test_plot_loss_curve_rejects_unusable_history(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_loss_curve([], tmp_path / "a.png")
    with pytest.raises(ValueError, match="loss"):
        plot_loss_curve([{"step": 1, "lr": 1e-4}], tmp_path / "b.png")
    with pytest.raises(ValueError, match="finite"):
        plot_loss_curve([{"step": 1, "loss": float("nan")}], tmp_path / "c.png")
    with pytest.raises(ValueError, match="step"):
        plot_loss_curve([{"loss": 1.0}], tmp_path / "d.png")


# ---------------------------------------------------------------------------------------------- units counted


def _graph(num_nodes: int) -> dict:
    """A path graph of `num_nodes` nodes with 2 features each."""
    edges = [list(range(num_nodes - 1)), list(range(1, num_nodes))]
    return {
        "num_nodes": num_nodes,
        "edge_index": edges,
        "node_features": [[1.0, float(n)] for n in range(num_nodes)],
    }


def test_graph_units_are_real_nodes_not_padding():
    spec = get_modality("graph")
    config = MMFMGraphConfig(node_feature_size=2)
    processor = spec.build_processor(config, None)
    items, kwargs = spec.row_adapter({key: [_graph(n)[key] for n in (2, 5, 3)] for key in _graph(1)}, "text")
    inputs = processor(items, return_tensors="pt", **kwargs)
    assert inputs["node_features"].shape[:2] == (3, 5)  # padded to the largest graph: 15 slots
    assert spec.count_units(inputs, config) == 2 + 5 + 3
    assert spec.unit == "nodes"


def test_throughput_of_a_graph_run_counts_real_nodes(tmp_path):
    """One epoch of 24 graphs of 1 to 6 nodes in batches of 4: the nodes/s of each step times its time sum
    to the nodes the data holds, not to the padded slots."""
    sizes = [1 + (7 * i) % 6 for i in range(24)]
    source = write_jsonl(tmp_path / "graphs.jsonl", [_graph(n) for n in sizes])
    config = write_run_config(tmp_path / "graph.yaml", {
        "tasks": {"graph": {"objective": "graphmae", "data": {"source": str(source)}, "evaluation": []}},
    })  # fmt: skip
    result = run_in_process(
        "--config", str(config), f"output_dir={tmp_path / 'run'}", "training.max_steps=6",
        "training.per_device_batch_size=4", "logging.log_every=1", "logging.progress_bar=false",
        "logging.report_to=[]", "checkpointing.save_every=0",
        *[f"tasks.graph.model.config.{k}={v}" for k, v in TINY.items()],
    )  # fmt: skip
    history = result["history"]
    assert result["skipped_samples"] == 0 and len(history) == 6
    assert sum(r["samples_per_s"] * r["step_time_s"] for r in history) == pytest.approx(24)
    assert sum(r["nodes_per_s"] * r["step_time_s"] for r in history) == pytest.approx(sum(sizes))
    assert sum(sizes) < 24 * max(sizes)
