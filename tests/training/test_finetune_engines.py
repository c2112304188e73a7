"""Fine-tuning under `accelerate launch` with DeepSpeed ZeRO-2 (two CPU processes) with a LoRA adapter, continued
from its checkpoint; and adapters that load where mmfm is not installed."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ._runs import ACCELERATE, REPO, free_port, launch_env, metrics
from .test_finetune import load_adapter, run_finetune, score, tiny_args

FINETUNE = REPO / "recipes" / "finetune.py"


@pytest.mark.xdist_group("multiprocess")
def test_lora_under_zero2_two_processes_and_resume(tmp_path):
    out = tmp_path / "run"

    def launch(steps: int) -> dict:
        args = tiny_args(out, "text", "finetune.peft.method=lora", "checkpointing.save_every=2",
                         f"training.max_steps={steps}", "training.per_device_batch_size=4")  # fmt: skip
        command = [str(ACCELERATE), "launch", "--config_file", str(REPO / "recipes/accelerate/zero2.yaml"),
                   "--num_processes", "2", "--main_process_port", str(free_port()), str(FINETUNE), *args]  # fmt: skip
        result = subprocess.run(
            command, cwd=REPO, env=launch_env(), capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return metrics(out)

    first = launch(4)
    assert (first["num_processes"], first["distributed_type"]) == (2, "DistributedType.DEEPSPEED")
    assert first["rows_per_step"] == 8 and [e["step"] for e in first["validation"]] == [2, 4]
    continued = launch(6)
    assert continued["resumed_from"].endswith("step_00000004")
    assert [e["step"] for e in continued["validation"]] == [2, 4, 6]
    assert continued["validation"][:2] == first["validation"]  # the evaluations travel in the checkpoint
    # The adapter the two processes trained reloads and scores the test split as the run's best model did.
    assert score(load_adapter(out / "adapter"), out, "test")["loss"] == pytest.approx(
        continued["test"]["loss"], rel=1e-5
    )


def _inputs(modality: str, adapter: Path) -> dict:
    if modality == "text":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(adapter)
        return dict(tokenizer(["the shuttle reached orbit", "god and belief"], padding=True, return_tensors="pt"))
    from transformers import AutoImageProcessor

    images = [np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8) for i in range(2)]
    return dict(AutoImageProcessor.from_pretrained(adapter)(images, return_tensors="pt"))


@pytest.mark.parametrize(
    "modality,auto_peft_class",
    [("text", "AutoPeftModelForSequenceClassification"), ("vision", "AutoPeftModel")],
)
def test_adapter_loads_without_mmfm(tmp_path, modality, auto_peft_class):
    """Text adapters carry peft's SEQ_CLS task; the others name the head's transformers Auto class
    (`point_adapter_at_auto_class`), so `AutoPeftModel` rebuilds the head from the base folder's own code."""
    out = tmp_path / "run"
    run_finetune(*tiny_args(out, modality, "finetune.peft.method=lora"))
    inputs = _inputs(modality, out / "adapter")
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = load_adapter(out / "adapter").eval()(**inputs).logits
    script = Path(__file__).with_name("_load_adapter_without_mmfm.py")
    env = {**launch_env(), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, str(script), str(out / "adapter"), str(tmp_path / "inputs.pt"),
                             str(tmp_path / "logits.pt"), auto_peft_class], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected, rtol=0, atol=0)
