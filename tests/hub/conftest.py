"""Tiny real runs the publishing tests share (built once per session, a few seconds each): a text-image
binding run with its end-of-run evaluation, an MAE run with frozen-feature probes, a two-task run, and the
environment of a subprocess that pushes to the fake Hub (`fake_hub.py`)."""

import os
from pathlib import Path

import pytest

from tests.training._runs import TINY, run_in_process, write_run_config
from tests.training.conftest import small_demo_corpus  # noqa: F401  (the demo corpus the runs read)

REPO = Path(__file__).resolve().parents[2]
VISION = {**TINY, "image_size": 16, "patch_size": 4}
QUIET = {
    "checkpointing": {"save_every": 0},
    "logging": {"log_every": 1, "progress_bar": False, "report_to": []},
}


def binding_config(folder: Path, **hub) -> Path:
    """A CLIP text-image run of 4 steps on digit captions, evaluated at the end (retrieval, zero-shot)."""
    task = {
        "objective": "clip",
        "binding": {"modalities": ["text", "vision"], "mode": "pairs", "projection_dim": 16},
        "model": {"config": {"text": {**TINY, "max_position_embeddings": 32}, "vision": VISION}},
        "data": {"source": "demo", "subsets": ["digit_captions"], "max_length": 16},
    }
    tree = {"output_dir": str(folder / "run"), "tasks": {"clip": task},
            "training": {"per_device_batch_size": 8, "warmup_ratio": 0.0, "max_steps": 4}, **QUIET}  # fmt: skip
    if hub:
        tree["hub"] = hub
    return write_run_config(folder / "clip.yaml", tree)


def mae_task(**model) -> dict:
    task = {"objective": "mae", "data": {"source": "demo", "subsets": ["digits"]}}
    if model.get("init_from"):
        return {**task, "model": model, "evaluation": []}
    decoder = {f"decoder_{k}": v for k, v in TINY.items()}
    return {**task, "model": {"config": VISION}, "objective_config": decoder}


def mae_config(folder: Path, tasks: dict, steps: int = 3) -> Path:
    tree = {"output_dir": str(folder / "run"), "tasks": tasks,
            "training": {"per_device_batch_size": 8, "warmup_ratio": 0.0, "max_steps": steps}, **QUIET}  # fmt: skip
    return write_run_config(folder / "mae.yaml", tree)


@pytest.fixture(scope="session")
def binding_run(tmp_path_factory, small_demo_corpus) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("binding")
    run_in_process("--config", str(binding_config(folder)))
    return folder / "run"


@pytest.fixture(scope="session")
def mae_run(tmp_path_factory, small_demo_corpus) -> Path:  # noqa: F811
    """An MAE run with the objective's default evaluation (kNN and linear probe on digits)."""
    folder = tmp_path_factory.mktemp("mae")
    run_in_process("--config", str(mae_config(folder, {"mae": mae_task()})))
    return folder / "run"


@pytest.fixture(scope="session")
def two_task_run(tmp_path_factory, small_demo_corpus) -> Path:  # noqa: F811
    """A run of two MAE tasks (`a`, `b`), exported to model/a and model/b, without evaluation."""
    folder = tmp_path_factory.mktemp("two_tasks")
    tasks = {name: {**mae_task(), "evaluation": []} for name in ("a", "b")}
    run_in_process("--config", str(mae_config(folder, tasks, steps=2)))
    return folder / "run"


def push_env(hub_url: str, home: Path, token: str = "hf_fake") -> dict[str, str]:
    """The environment of a subprocess that talks to the fake Hub: online, its endpoint, a token, its own
    HF_HOME (no stored login or cache of the user's)."""
    env = dict(os.environ)
    env.update(
        HF_ENDPOINT=hub_url, HF_TOKEN=token, HF_HUB_OFFLINE="0", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
        HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )  # fmt: skip
    env.pop("TRANSFORMERS_OFFLINE", None)
    return env
