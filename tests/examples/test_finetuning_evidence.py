"""`examples/finetuning_evidence.py` end to end on a tiny time-series export: its five variants (pretrained,
random init of the same architecture, 10 % labels of each, LoRA) run through the fine-tuning recipe in this
process for 2 steps each, and the summary and table come out."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _script():
    spec = importlib.util.spec_from_file_location(
        "finetuning_evidence", REPO / "examples" / "finetuning_evidence.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small_demo_home(monkeypatch):
    """The training tests' small demo corpus (built once per checkout) as MMFM_HOME."""
    from filelock import FileLock

    from mmfm.data.demo import build_demo_corpus
    from tests.training.conftest import SUBSETS, TEST_HOME

    TEST_HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_HOME / "build.lock")):
        build_demo_corpus(TEST_HOME / "demo", subsets=SUBSETS, max_samples=400, progress=False)
    monkeypatch.setenv("MMFM_HOME", str(TEST_HOME))


def test_five_variants_and_table(tmp_path, small_demo_home):
    from mmfm.models import MMFMTimeSeriesConfig, MMFMTimeSeriesForMaskedPatchModeling

    torch.manual_seed(0)
    config = MMFMTimeSeriesConfig.from_preset(
        "tiny", context_length=256, patch_length=16, patch_stride=16, **TINY
    )
    MMFMTimeSeriesForMaskedPatchModeling(config).save_pretrained(
        tmp_path / "exports" / "timeseries" / "model"
    )
    out = tmp_path / "evidence"
    results = _script().main([
        "--modality", "timeseries", "--steps", "2", "--in-process", "--pretrained", str(tmp_path / "exports"),
        "--output", str(out),
        "--set", "training.per_device_batch_size=8",  # 10 % of the small test corpus is under 32 rows
    ])  # fmt: skip
    by_variant = {r["variant"]: r for r in results}
    assert list(by_variant) == ["pretrained", "random", "pretrained_10pct", "random_10pct", "pretrained_lora"]
    for r in results:
        assert r["steps"] == 2 and 0 <= r["test"]["accuracy"] <= 1
    # Random init is the export's architecture: the same parameter count, no init_from.
    assert by_variant["random"]["total_parameters"] == by_variant["pretrained"]["total_parameters"]
    assert by_variant["random"]["init_from"] is None and by_variant["pretrained"]["init_from"]
    assert by_variant["pretrained_10pct"]["label_fraction"] == 0.1
    lora = by_variant["pretrained_lora"]
    assert lora["peft"] == "lora" and lora["learning_rate"] == 5e-3
    assert lora["trainable_parameters"] < by_variant["pretrained"]["trainable_parameters"]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 5 and summary["warnings"] == []
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + 5 and "LoRA (lr 0.005)" in table[-1]
