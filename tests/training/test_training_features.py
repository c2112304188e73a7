"""Accelerate features of the loop, each checked by what it must not change or must produce: gradient
accumulation and gradient checkpointing leave the result of a step unchanged, bf16 trains, streaming data
with DataLoader workers trains, weight decay touches matrices only, and the schedules have their shape."""

import itertools
import math

import pytest
import torch

from mmfm.training import build_optimizer, build_scheduler
from mmfm.training.config import TrainingSection

from ._runs import causal_text_config, causal_text_start, max_difference, metrics, run_in_process, weights


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    texts, start = causal_text_start(root)
    return root, causal_text_config(root / "clm.yaml", texts, start, steps=3)


def _run(text, name: str, *overrides: str) -> dict:
    root, config = text
    return run_in_process(
        "--config", str(config), f"output_dir={root / name}", "logging.report_to=[]", *overrides
    )


def test_gradient_accumulation_equals_the_larger_batch(text):
    _run(text, "batch8", "training.per_device_batch_size=8")
    accumulated = _run(
        text, "accumulated", "training.per_device_batch_size=4", "training.gradient_accumulation_steps=2"
    )
    assert accumulated["rows_per_step"] == 8
    root = text[0]
    # Tolerance: see test_distributed.TOLERANCE (Adam magnifies rounding where a gradient is nearly zero).
    assert max_difference(weights(root / "batch8" / "model"), weights(root / "accumulated" / "model")) < 1e-4


def test_gradient_checkpointing_leaves_the_weights_unchanged(text):
    _run(text, "plain", "training.per_device_batch_size=4")
    _run(text, "checkpointed", "training.per_device_batch_size=4", "training.gradient_checkpointing=true")
    root = text[0]
    assert max_difference(weights(root / "plain" / "model"), weights(root / "checkpointed" / "model")) < 1e-6


def test_bf16_mixed_precision_trains(text):
    result = _run(text, "bf16", "training.per_device_batch_size=4", "training.mixed_precision=bf16")
    assert result["mixed_precision"] == "bf16"
    assert all(math.isfinite(r["loss"]) for r in result["history"])
    exported = weights(text[0] / "bf16" / "model")
    assert all(t.dtype == torch.float32 for t in exported.values())  # master weights stay float32


def test_streaming_data_with_workers_trains(text):
    result = _run(
        text, "stream", "training.per_device_batch_size=4", "tasks.clm.data.streaming=true",
        "tasks.clm.data.num_workers=2", "tasks.clm.data.shuffle_buffer=50",
    )  # fmt: skip
    assert result["steps"] == 3 and all(math.isfinite(r["loss"]) for r in result["history"])
    assert metrics(text[0] / "stream")["throughput"]["tokens_per_s"] > 0


def test_weight_decay_applies_to_matrices_only():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    optimizer = build_optimizer(model, TrainingSection(weight_decay=0.1))
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {p.dim() for p in decayed["params"]} == {2} and {p.dim() for p in plain["params"]} == {1}
    assert len(decayed["params"]) == 2 and len(plain["params"]) == 3  # linear bias, norm weight and bias


@pytest.mark.parametrize("name", ["cosine", "linear", "constant"])
def test_schedules_warm_up_then_decay(name):
    parameter = torch.nn.Parameter(torch.zeros(1))
    training = TrainingSection(max_steps=10, warmup_ratio=0.2, learning_rate=1.0, lr_scheduler=name)
    optimizer = torch.optim.AdamW([parameter], lr=training.learning_rate)
    schedule = build_scheduler(optimizer, training)
    rates = []
    for _ in range(10):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert rates[:3] == [0.0, 0.5, 1.0]  # 2 warm-up steps
    if name == "constant":
        assert rates[2:] == [1.0] * 8
    else:
        assert all(a > b for a, b in itertools.pairwise(rates[2:]))
        assert rates[-1] == pytest.approx(0.125 if name == "linear" else (1 + math.cos(math.pi * 7 / 8)) / 2)
