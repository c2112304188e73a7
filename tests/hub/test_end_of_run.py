"""`hub.push_to_hub`: a tiny run (the recipe in a subprocess, online against the fake Hub) pushes its export,
card and loss plot when it ends, from the main process, and asks the Hub for nothing else."""

import subprocess
import sys

from huggingface_hub import ModelCard

from .conftest import REPO, binding_config, push_env
from .fake_hub import FakeHub

PUSH_ROUTES = ("/api/whoami-v2", "/api/repos/create", "/api/validate-yaml", "/api/models/tester/clip-run/")


def test_a_run_pushes_itself_when_it_ends(tmp_path):
    config = binding_config(tmp_path, push_to_hub=True, model_id="tester/clip-run", private=True)
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, str(REPO / "recipes" / "pretrain.py"), "--config", str(config)], cwd=REPO,
            env=push_env(hub.url, tmp_path / "hf_home"), capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    run = tmp_path / "run"
    assert hub.repos["tester/clip-run"].private and len(hub.commits) == 1
    commit = hub.commits[0]
    assert commit.summary == "Upload MMFMModel trained with mmfm (4 steps)" and commit.ref == "main"
    exported = {p.name: p.read_bytes() for p in (run / "model").iterdir()}
    assert sorted(commit.files) == sorted([*exported, "README.md", "loss.png"])
    assert all(commit.files[name] == content for name, content in exported.items())
    assert commit.files["loss.png"] == (run / "loss.png").read_bytes()
    card = ModelCard(commit.files["README.md"].decode())
    assert card.data.pipeline_tag == "zero-shot-image-classification" and card.data.eval_results
    # The run talked to the Hub only to push: no model, tokenizer or data was fetched from it.
    assert all(path.startswith(PUSH_ROUTES) for _, path in hub.requests), hub.requests
    assert f"Pushed {len(commit.files)} files to tester/clip-run" in result.stderr
