"""Every recipe config runs end to end for a few steps (tiny widths), in this process: it trains, saves
checkpoints, logs to TensorBoard, writes metrics.json and loss.png, and exports models that the Auto
classes load with their processors."""

import math
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

from mmfm.objectives import get_objective
from mmfm.processing import MMFMProcessor
from mmfm.training.config import load_config

from ._runs import TINY, metrics, run_in_process, tiny_overrides

ALL_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "recipes" / "configs").glob("*.yaml"))
# Binding configs (clip, siglip, bind, lit) export one composite and run in tests/training/test_binding.py.
CONFIGS = [
    c
    for c in ALL_CONFIGS
    if not load_config(c).tasks or not any(t.binds for t in load_config(c).tasks.values())
]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_recipe_config_runs_and_exports(config, tmp_path):
    out = tmp_path / config.stem
    result = run_in_process("--config", str(config), f"output_dir={out}", *tiny_overrides(config))
    assert result == metrics(out)
    assert result["steps"] == 3 and [r["step"] for r in result["history"]] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result["history"])
    assert result["throughput"]["samples_per_s"] > 0 and result["throughput"]["tflops_per_s_per_device"] > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000002", "step_00000003"]
    assert yaml.safe_load((out / "run_config.yaml").read_text())["training"]["max_steps"] == 3
    for name, folder in result["exported"].items():
        encoder = AutoModel.from_pretrained(folder)
        assert type(encoder).__name__.endswith("Model") and encoder.config.hidden_size == TINY["hidden_size"]
        objective = result["objectives"][name]
        auto_class = {"clm": AutoModelForCausalLM, "mlm": AutoModelForMaskedLM}.get(
            objective, AutoModelForPreTraining
        )
        with_heads = auto_class.from_pretrained(folder)
        assert type(with_heads) is get_objective(objective).model_class  # the objective's own class
        assert with_heads.config.pretraining_objective == objective
        trained = with_heads.state_dict()
        for key, value in encoder.state_dict().items():  # the encoder inside equals the bare encoder
            assert torch.equal(value, trained[f"encoder.{key}"]), (name, key)
        assert MMFMProcessor.from_pretrained(folder).modalities
    # The end-of-run probes of the exported encoders, as the config asks for them (the objective's
    # default evaluations where the config names none).
    run = load_config(config)
    asked = {name: task.evaluations() for name, task in run.tasks.items()}
    assert any(asked.values()), "no recipe task is evaluated"
    assert sorted(result["evaluation"]) == sorted(name for name, entries in asked.items() if entries)
    for name, evaluations in asked.items():
        for evaluation in evaluations:
            report = result["evaluation"][name][f"{evaluation.subset}/{evaluation.label_column}"]
            assert sorted(report) == sorted(evaluation.probes)
            for probe in evaluation.probes:
                metric = "r2" if probe == "ridge" else "accuracy"
                assert math.isfinite(report[probe][metric])
