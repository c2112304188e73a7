"""Every `*ForPreTraining` model: AutoModelForPreTraining loads it, AutoModel loads the bare encoder from the
same folder, and an exported folder gives identical losses where mmfm cannot be imported."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining

from mmfm.models import ENCODER_CLASSES, PRETRAINING_CLASSES
from tests.model_inputs import make_inputs, tiny_config

SCRIPT = Path(__file__).with_name("_load_heads_without_mmfm.py")
VARIANTS = {  # name -> (modality, config overrides)
    "text": ("text", {}),
    "vision_mae": ("vision", {}),
    "vision_droppos": ("vision", {"pretraining_objective": "droppos"}),
    "audio": ("audio", {}),
    "graph": ("graph", {}),
    "timeseries_masked": ("timeseries", {}),
    "timeseries_autoregressive": ("timeseries", {"pretraining_objective": "autoregressive", "is_causal": True}),
}


def _inputs(modality: str, config) -> dict:
    """A fixed batch with every random choice (masking noise, labels) given explicitly."""
    batch, _ = make_inputs(modality, config, seed=1)
    gen = torch.Generator().manual_seed(2)
    if modality == "text":
        ids = batch["input_ids"]
        chosen = (torch.rand(ids.shape, generator=gen) < 0.3) & batch["attention_mask"].bool()
        chosen[:, 1] = True
        batch["labels"] = torch.where(chosen, ids, -100)
        batch["substitution_labels"] = torch.where(
            batch["attention_mask"].bool(), torch.randint(0, 2, ids.shape, generator=gen), -100
        )
    elif modality == "vision":
        batch["noise"] = torch.rand(3, 20, generator=gen)  # 32x40 images: 4x5 patches
        batch["position_noise"] = torch.rand(3, 5, generator=gen)
        batch["pixel_values"] = batch["pixel_values"][:, :, :, :40]
    elif modality == "audio":
        batch["noise"] = torch.rand(3, 24, generator=gen)
    elif modality == "graph":
        batch["noise"] = torch.rand(3, 5, generator=gen)
        batch["node_features"], batch["attention_mask"] = batch["node_features"][:2], batch["attention_mask"][:2]
        batch["edge_index"], batch["noise"] = batch["edge_index"][:2], batch["noise"][:2]  # graphs of 5 and 3 nodes
    else:
        batch["noise"] = torch.rand(3, 2, 8, generator=gen)
    return batch


def _build(name: str):
    modality, overrides = VARIANTS[name]
    config = tiny_config(modality, **overrides)
    torch.manual_seed(0)
    return modality, PRETRAINING_CLASSES[modality](config).eval(), config


@pytest.mark.parametrize("name", list(VARIANTS))
def test_auto_classes_load_heads_and_bare_encoder(name, tmp_path):
    modality, model, config = _build(name)
    if name == "vision_droppos":  # DropPos classifies among the config's grid: use 32x32 images
        inputs = _inputs(modality, config)
        inputs.update(pixel_values=inputs["pixel_values"][:, :, :, :32], noise=inputs["noise"][:, :16])
        inputs["position_noise"] = inputs["position_noise"][:, :4]
    else:
        inputs = _inputs(modality, config)
    with torch.no_grad():
        expected = model(**inputs).loss
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).loss, expected, rtol=0, atol=0)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert type(encoder) is ENCODER_CLASSES[modality]
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(value, model.encoder.state_dict()[key], rtol=0, atol=0)


def test_exported_pretraining_models_give_identical_losses_without_mmfm(tmp_path):
    expected = {}
    names = [n for n in VARIANTS if n != "vision_droppos"]
    for name in names:
        modality, model, config = _build(name)
        inputs = _inputs(modality, config)
        with torch.no_grad():
            expected[name] = model(**inputs).loss
        model.save_pretrained(tmp_path / name)
        torch.save(inputs, tmp_path / f"{name}_inputs.pt")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    specs = [f"{name}:AutoModelForPreTraining" for name in names]
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), *specs], cwd=tmp_path, env=env, check=True, timeout=300)
    remote = torch.load(tmp_path / "remote_outputs.pt")
    for name, spec in zip(names, specs):
        assert remote[spec]["module"].startswith("transformers_modules."), remote[spec]["module"]
        torch.testing.assert_close(remote[spec]["outputs"]["loss"], expected[name], rtol=0, atol=0)
