"""Every registered objective's model: AutoModelForPreTraining (and the objective's other Auto classes) loads
it back as the same class with the same loss, AutoModel loads the bare encoder from the same folder without a
loading report, and an exported folder gives identical outputs where mmfm cannot be imported.

Parametrized over `mmfm.objectives.objectives()`, so a newly registered objective is covered without edits.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoModel, AutoModelForPreTraining
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

import mmfm  # noqa: F401  (registers the Auto classes)
from mmfm.modalities import get_modality
from mmfm.objectives import get_objective
from tests.model_inputs import OBJECTIVES, build_model, objective_config, objective_inputs

SCRIPT = Path(__file__).with_name("_load_heads_without_mmfm.py")


def _build(name: str):
    """The tiny model of objective `name` (seeded, eval mode), its config and a fixed batch."""
    config = objective_config(name)
    torch.manual_seed(0)
    model = build_model(name, config).eval()
    return model, config, objective_inputs(name, config, seed=1)


def _tensors(output) -> dict:
    return {key: value for key, value in output.items() if isinstance(value, torch.Tensor)}


def _assert_same_outputs(got: dict, expected: dict, where: str) -> None:
    """The same output fields; the loss bit for bit, every other tensor to float32 rounding.

    Weights loaded from safetensors are views at arbitrary byte offsets of the file buffer, and the CPU
    matmul kernels round differently on unaligned memory (about 1e-10 on these logits), so only the loss is
    compared exactly, as before the redesign.
    """
    assert set(got) == set(expected), where
    assert "loss" in expected, where
    torch.testing.assert_close(got["loss"], expected["loss"], rtol=0, atol=0, msg=f"{where}: loss differs")
    for key, value in expected.items():
        torch.testing.assert_close(
            got[key], value, rtol=1e-6, atol=1e-6, msg=lambda m, k=key: f"{where}: {k}: {m}"
        )


def test_every_objective_is_covered():
    assert set(OBJECTIVES) >= {
        "mlm",
        "clm",
        "rts",
        "mae",
        "droppos",
        "ssast",
        "graphmae",
        "ts_masked",
        "ts_autoregressive",
    }


@pytest.mark.parametrize("name", OBJECTIVES)
def test_auto_classes_load_the_objective_model_and_the_bare_encoder(name, tmp_path):
    objective = get_objective(name)
    model, _, inputs = _build(name)
    assert type(model) is objective.model_class
    with torch.no_grad():
        expected = _tensors(model(**inputs))
    model.save_pretrained(tmp_path)

    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pretraining_objective"] == name
    assert saved["pretraining_config"] == model.objective.to_dict()
    assert saved["architectures"] == [objective.model_class.__name__]
    assert set(saved["auto_map"]) >= {"AutoConfig", "AutoModel", *objective.model_class.auto_classes}
    assert "AutoModelForPreTraining" in objective.model_class.auto_classes
    for auto_class in objective.model_class.auto_classes:
        assert saved["auto_map"][auto_class].endswith(f".{objective.model_class.__name__}")
    for reference in saved["auto_map"].values():
        assert (tmp_path / f"{reference.split('.')[0]}.py").exists(), reference

    for auto_class in objective.model_class.auto_classes:  # AutoModelForPreTraining, and MaskedLM/CausalLM
        reloaded = getattr(transformers, auto_class).from_pretrained(tmp_path).eval()
        assert type(reloaded) is objective.model_class, auto_class
        assert reloaded.objective == model.objective
        with torch.no_grad():
            _assert_same_outputs(_tensors(reloaded(**inputs)), expected, auto_class)

    with CaptureLogger(logging.get_logger("transformers.modeling_utils")) as captured:
        encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(encoder) is get_modality(objective.modality).encoder_class
    assert info == {
        "missing_keys": set(),
        "unexpected_keys": set(),
        "mismatched_keys": set(),
        "error_msgs": [],
    }
    assert "LOAD REPORT" not in captured.out, captured.out
    # The only weights the bare encoder leaves out are objective-owned ones it declares (e.g. mask tokens).
    left_out = model.encoder.state_dict().keys() - encoder.state_dict().keys()
    ignored = [re.compile(pattern) for pattern in type(encoder)._keys_to_ignore_on_load_unexpected or ()]
    assert all(any(p.search(key) for p in ignored) for key in left_out), left_out
    assert encoder.state_dict().keys() <= model.encoder.state_dict().keys()
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, model.encoder.state_dict()[key], rtol=0, atol=0)


def test_the_loading_report_check_can_fail(tmp_path):
    """The silent-load check above would see a report: loading a bare encoder into a pretraining model
    reports the heads as missing."""
    torch.manual_seed(0)
    build_model("mae").encoder.save_pretrained(tmp_path)
    with CaptureLogger(logging.get_logger("transformers.modeling_utils")) as captured:
        _, info = AutoModelForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"]
    assert "LOAD REPORT" in captured.out


def test_exported_objective_models_give_identical_outputs_without_mmfm(tmp_path):
    expected, specs = {}, []
    for name in OBJECTIVES:
        model, _, inputs = _build(name)
        with torch.no_grad():
            expected[name] = _tensors(model(**inputs))
        model.save_pretrained(tmp_path / name)
        torch.save(inputs, tmp_path / f"{name}_inputs.pt")
        specs += [f"{name}:{auto_class}" for auto_class in type(model).auto_classes]
    assert {"mlm:AutoModelForMaskedLM", "clm:AutoModelForCausalLM"} <= set(specs)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # Run from tmp_path so the repository checkout is not on sys.path either.
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *specs], cwd=tmp_path, env=env, check=True, timeout=600
    )
    remote = torch.load(tmp_path / "remote_outputs.pt")
    assert set(remote) == set(specs)
    for spec in specs:
        name = spec.split(":")[0]
        result = remote[spec]
        assert result["module"].startswith("transformers_modules."), result["module"]
        assert result["class"] == get_objective(name).model_class.__name__
        _assert_same_outputs(result["outputs"], expected[name], spec)
