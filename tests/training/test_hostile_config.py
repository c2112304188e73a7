"""Settings that would train something other than what they say are refused before anything is built,
naming the field and the fix: non-finite or out-of-range numbers, fp16 without a GPU, trackers that are
not installed, duplicate or malformed YAML. Numerics that go wrong during training never reach the weights:
a NaN/Inf gradient norm with a finite loss skips its step, and the export refuses non-finite weights."""

import math

import pytest
import torch
from safetensors.torch import load_file

from mmfm.training import load_config

from . import _faults
from ._runs import mae_run, run_in_process


def _config_error(tmp_path, *overrides):
    return load_config(None, [*mae_run(tmp_path)[2:], *overrides])


@pytest.mark.parametrize(
    ("override", "error", "words"),
    [
        ("training.learning_rate=.inf", ValueError, "`training.learning_rate` must be a finite number"),
        ("training.weight_decay=.nan", ValueError, "`training.weight_decay` must be a finite number"),
        ("training.max_grad_norm=.nan", ValueError, "`training.max_grad_norm` must be a finite number"),
        ("training.warmup_ratio=-.inf", ValueError, "`training.warmup_ratio` must be a finite number"),
        ("training.adam_beta1=1.5", ValueError, r"`training.adam_beta1` must be in \[0, 1\), got 1.5"),
        ("training.adam_beta2=-0.1", ValueError, r"`training.adam_beta2` must be in \[0, 1\)"),
        ("training.adam_epsilon=0", ValueError, "`training.adam_epsilon` must be > 0"),
        ("training.weight_decay=-1", ValueError, "`training.weight_decay` must be >= 0"),
        ("tasks.mae.weight=.inf", ValueError, "`tasks.mae.weight` must be a finite number"),
        (
            "tasks.mae.model.config.hidden_dropout_prob=.nan",
            ValueError,
            "hidden_dropout_prob` must be a finite",
        ),
        ("tasks.mae.objective_config.mask_ratio=.inf", ValueError, "mask_ratio` must be a finite number"),
        (
            "logging.report_to=[wandb]",
            ValueError,
            "`logging.report_to` names 'wandb', which is not installed",
        ),
        (
            "logging.report_to=[tensorbored]",
            ValueError,
            "`logging.report_to` names 'tensorbored', not a tracker",
        ),
        ("training.max_steps={a: 1, a: 2}", ValueError, "key 'a' is given twice"),
        ("training.max_steps=[1", ValueError, "override 'training.max_steps=\\[1', line 1.*not valid YAML"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(tmp_path, override, error, words):
    with pytest.raises(error, match=words):
        _config_error(tmp_path, override)


def test_duplicate_keys_in_a_config_file_name_the_file_and_lines(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  max_steps: 10\n  learning_rate: 0.001\n  max_steps: 20\n")
    with pytest.raises(
        ValueError, match=r"run.yaml', line 4, column 3: .*'max_steps' is given twice \(first on line 2\)"
    ):
        load_config(path)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  max_steps: 10\n learning_rate: [0.1\n")
    with pytest.raises(ValueError, match=r"run.yaml', line 3, column 2: not valid YAML"):
        load_config(path)


def test_a_config_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes(b"training:\n  max_steps: \xff\xfe\n")
    with pytest.raises(ValueError, match="run.yaml' is not UTF-8 text"):
        load_config(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is what a GPU runs")
def test_fp16_without_a_gpu_is_refused_instead_of_training_in_float32(tmp_path):
    with pytest.raises(ValueError, match="`training.mixed_precision` = fp16 needs a GPU.*bf16"):
        run_in_process(*mae_run(tmp_path, "training.max_steps=1", "training.mixed_precision=fp16"))
    assert not (tmp_path / "run").exists()


@pytest.fixture
def nan_gradients_on():
    """The backward calls (1-based) whose gradients become NaN while the loss stays finite."""
    calls: set[int] = set()
    undo = _faults.nan_gradients_on(calls)
    yield calls
    undo()


@pytest.mark.parametrize("clipping", ["1.0", "null"])
def test_nan_gradients_with_a_finite_loss_skip_their_step(tmp_path, nan_gradients_on, clipping):
    nan_gradients_on.update({2, 3})
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=5", f"training.max_grad_norm={clipping}"))
    assert result["steps"] == 5 and result["nonfinite_steps"] == 2
    assert [r["nonfinite_steps"] for r in result["history"]] == [0, 1, 2, 2, 2]
    exported = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert all(torch.isfinite(value).all() for value in exported.values())


def test_the_export_refuses_non_finite_weights(tmp_path, monkeypatch):
    step = torch.optim.AdamW.step

    def step_then_diverge(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        self.param_groups[0]["params"][0].data.fill_(math.inf)  # a divergence no check caught
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_diverge)
    with pytest.raises(
        ValueError, match=r"Refusing to export: \d+ weight tensor\(s\) hold NaN or Inf"
    ) as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=2"))
    assert "checkpointing.resume" in str(raised.value)
    assert not (tmp_path / "run" / "model" / "model.safetensors").exists()
