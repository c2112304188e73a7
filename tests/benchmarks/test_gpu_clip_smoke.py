"""`benchmarks/gpu_clip.py --smoke`: the CLIP benchmark runs end to end on the CPU and writes its report.
Checks the script and the report's shape, never a timing (a benchmark is not a test)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROW_KEYS = {
    "name", "setting", "batch", "attention", "parameters_m", "samples_per_s", "ms_per_step", "tflop_per_step",
    "tflops_per_s", "mfu", "peak_memory_gib", "first_loss", "final_loss", "ratio_vs_hf",
}  # fmt: skip


def test_gpu_clip_smoke_writes_report(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "benchmarks/gpu_clip.py", "--smoke", "--output", str(tmp_path)]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| HF CLIPModel | fp32 |" in done.stdout  # the Markdown table is printed

    report = json.loads((tmp_path / "results.json").read_text())
    assert {"device", "peak_tflops", "torch", "transformers", "settings", "rows", "ratios", "notes"} <= set(
        report
    )
    assert report["device"] == "cpu" and report["peak_tflops"] is None
    assert report["settings"]["preset"] == "tiny" and report["settings"]["precision"] == "no"
    names = [(r["name"], r["setting"]) for r in report["rows"]]
    assert names == [
        ("mmfm MMFMModel", "fp32"),
        ("mmfm MMFMModel", "fp32, validate_inputs=False"),
        ("HF CLIPModel", "fp32"),
    ]
    for row in report["rows"]:
        assert ROW_KEYS <= set(row), row
        assert row["attention"] == ["sdpa"]
        assert row["samples_per_s"] > 0 and row["tflop_per_step"] > 0
        assert math.isfinite(row["first_loss"]) and math.isfinite(row["final_loss"])
        assert row["mfu"] is None and row["peak_memory_gib"] is None  # no peak and no CUDA memory on the CPU
    assert set(report["ratios"]) == {"mmfm_vs_hf", "mmfm_vs_hf_no_validation"}
    for ratio in report["ratios"].values():
        assert ratio["samples_per_s"] > 0 and ratio["peak_memory"] is None

    # Same shapes on both sides: the same work per step and (nearly) the same parameters.
    mmfm, hf = report["rows"][0], report["rows"][-1]
    assert math.isclose(mmfm["tflop_per_step"], hf["tflop_per_step"], rel_tol=0.05)
    assert math.isclose(mmfm["parameters_m"], hf["parameters_m"], rel_tol=0.02)
