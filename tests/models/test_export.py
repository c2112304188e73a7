"""Exported folders load where mmfm cannot be imported (`trust_remote_code=True`) with identical outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mmfm.models import MODALITIES
from tests.model_inputs import ALL_MODELS, build_model, make_inputs, tiny_config

SCRIPT = Path(__file__).with_name("_load_without_mmfm.py")


def test_exported_models_load_without_mmfm(tmp_path):
    expected = {}
    for name in ALL_MODELS:
        torch.manual_seed(0)
        config = tiny_config(name)
        model = build_model(name, config).eval()
        batch, _ = make_inputs(name, config)
        model.save_pretrained(tmp_path / name)
        torch.save(batch, tmp_path / f"{name}_inputs.pt")
        with torch.no_grad():
            expected[name] = model(**batch)

        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert set(saved["auto_map"]) >= {"AutoConfig", "AutoModel"}
        for reference in saved["auto_map"].values():
            assert (tmp_path / name / f"{reference.split('.')[0]}.py").exists()

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # Run from tmp_path so the repository checkout is not on sys.path either.
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *ALL_MODELS],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=300,
    )
    remote = torch.load(tmp_path / "remote_outputs.pt")
    for name in ALL_MODELS:
        assert remote[name]["module"].startswith("transformers_modules."), remote[name]["module"]
        if name == "composite":
            for modality in MODALITIES:
                torch.testing.assert_close(
                    remote[name]["embeddings"][modality], expected[name].embeddings[modality], rtol=0, atol=0
                )
        else:
            torch.testing.assert_close(
                remote[name]["pooler_output"], expected[name].pooler_output, rtol=0, atol=0
            )
            torch.testing.assert_close(
                remote[name]["last_hidden_state"], expected[name].last_hidden_state, rtol=0, atol=0
            )
