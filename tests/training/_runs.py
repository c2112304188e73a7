"""Helpers of the training tests: run the recipe in this process or under `accelerate launch`, read the
exported weights, and write small local datasets from the demo corpus."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "pretrain.py"  # the launcher the README shows
RECIPE_STORY = REPO / "mmfm" / "recipes" / "pretrain.py"  # what it runs (mmfm.recipes.pretrain)
ACCELERATE = Path(sys.executable).with_name("accelerate")
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _load_recipe():
    # A fresh copy of the recipe module each run, so names it imports (e.g. a monkeypatched
    # `mmfm.training.build_tasks`) are looked up again.
    spec = importlib.util.spec_from_file_location("mmfm_recipe_pretrain", RECIPE_STORY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(*argv: str) -> dict:
    """`recipes/pretrain.py argv` in this process (a fresh Accelerator state each time); its metrics."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        return _load_recipe().main(list(argv))
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def launch_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
        DS_ACCELERATOR="cpu", TORCH_EXTENSIONS_DIR=env.get("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions")),
        PYTHONUNBUFFERED="1",
    )  # fmt: skip
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(launch_args: list[str], recipe_args: list[str]) -> list[str]:
    return [str(ACCELERATE), "launch", *launch_args, str(RECIPE), *recipe_args]


def launch(launch_args: list[str], recipe_args: list[str], log: Path, timeout: float = 300) -> None:
    """Run `accelerate launch launch_args recipes/pretrain.py recipe_args`; fail with the log's tail."""
    with open(log, "w") as out:
        result = subprocess.run(
            launch_command(launch_args, recipe_args), cwd=REPO, env=launch_env(), stdout=out,
            stderr=subprocess.STDOUT, timeout=timeout, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"launch failed ({result.returncode}):\n{log.read_text()[-4000:]}"


def weights(model_folder: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(model_folder) / "model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert sorted(a) == sorted(b), f"different tensors: {sorted(set(a) ^ set(b))}"
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def demo_texts(count: int) -> list[str]:
    from mmfm.data.demo import load_demo_dataset

    return load_demo_dataset("text", "corpus")["train"].select(range(count))["text"]


def write_run_config(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def metrics(output_dir: str | Path) -> dict:
    return json.loads((Path(output_dir) / "metrics.json").read_text())


MAE = [
    "tasks.mae.objective=mae", "tasks.mae.data.subsets=[digits]", "tasks.mae.model.config={image_size: 16, patch_size: 4}",
    "training.per_device_batch_size=8", "logging.log_every=1", "logging.progress_bar=false",
    "checkpointing.save_every=0", "logging.report_to=[]", "tasks.mae.evaluation=[]",
] + [f"tasks.mae.model.config.{k}={v}" for k, v in TINY.items()] + [
    f"tasks.mae.objective_config.decoder_{k}={v}" for k, v in TINY.items()
]  # fmt: skip


def mae_run(tmp_path, *extra: str) -> list[str]:
    """A tiny MAE run over demo digits as the only task (the default text task removed by a config), without
    the objective's default end-of-run evaluation."""
    config = tmp_path / "mae.yaml"
    config.write_text("tasks: {}\n")
    return ["--config", str(config), f"output_dir={tmp_path / 'run'}", *MAE, *extra]


def causal_text_start(root: Path) -> tuple[Path, Path]:
    """(a JSON-lines file of 300 demo texts, a saved tiny causal LM with its tokenizer) under `root`:
    runs that start from the same saved model and data can be compared weight for weight."""
    from mmfm.data.demo import load_demo_tokenizer
    from mmfm.models import MMFMTextConfig, MMFMTextForCausalLM

    texts = write_jsonl(root / "texts.jsonl", [{"text": t} for t in demo_texts(300)])
    tokenizer = load_demo_tokenizer()
    config = MMFMTextConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), is_causal=True, pooling="last", max_position_embeddings=64, **TINY
    )
    torch.manual_seed(0)
    start = root / "start"
    MMFMTextForCausalLM(config).save_pretrained(start)
    tokenizer.save_pretrained(start)
    return texts, start


def causal_text_config(path: Path, texts: Path, start: Path, steps: int, **data) -> Path:
    """A run config training the saved causal LM `start` on `texts` for `steps` steps."""
    return write_run_config(path, {
        "tasks": {"clm": {"objective": "clm", "model": {"init_from": str(start)},
                          "data": {"source": str(texts), "max_length": 64, **data}}},
        "training": {"max_steps": steps, "learning_rate": 3e-3, "warmup_ratio": 0.0},
        "checkpointing": {"save_every": 0},
        "logging": {"log_every": 2, "progress_bar": False},
    })  # fmt: skip


def tiny_overrides(config: Path) -> list[str]:
    """Widths shrunk to TINY for every task of `config` (the objective's decoder too, when it has one),
    batch 4, 3 steps."""
    from mmfm.objectives import get_objective

    tree = yaml.safe_load(config.read_text())
    overrides = ["training.max_steps=3", "training.per_device_batch_size=4", "logging.log_every=1",
                 "checkpointing.save_every=2", "logging.progress_bar=false"]  # fmt: skip
    for name, task in tree["tasks"].items():
        overrides += [f"tasks.{name}.model.config.{key}={value}" for key, value in TINY.items()]
        fields = {f.name for f in dataclasses.fields(get_objective(task["objective"]).config_class)}
        if "decoder_hidden_size" in fields:
            overrides += [f"tasks.{name}.objective_config.decoder_{k}={v}" for k, v in TINY.items()]
    return overrides


def write_images(
    folder: Path, per_class: int, classes: tuple[str, ...] = ("dark", "light"), seed: int = 0
) -> list[Path]:
    """PNG files as users keep them: `folder/<class>/<i>.png`, noisy dark or light images of varying sizes
    (every fifth one grayscale); the written paths, class by class."""
    import numpy as np
    from PIL import Image

    rng, written = np.random.default_rng(seed), []
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height, width = 16 + 4 * (i % 3), 16 + 2 * (i % 4)
            low = 180 * c / max(1, len(classes) - 1)
            pixels = (low + 75 * rng.random((height, width, 3))).astype(np.uint8)
            image = Image.fromarray(pixels)
            path = folder / name / f"{i:03d}.png"
            (image.convert("L") if i % 5 == 4 else image).save(path)
            written.append(path)
    return written


def image_run(tmp_path: Path, data: dict, *extra: str, evaluation: list | None = None) -> list[str]:
    """Recipe arguments of a tiny MAE run (16x16 images, 4x4 patches) on local image `data`, batch 4."""
    task = {"objective": "mae", "data": data, "model": {"config": {"image_size": 16, "patch_size": 4, **TINY}},
            "objective_config": {f"decoder_{k}": v for k, v in TINY.items()},
            "evaluation": [] if evaluation is None else evaluation}  # fmt: skip
    config = write_run_config(tmp_path / "images.yaml", {
        "tasks": {"mae": task},
        "training": {"per_device_batch_size": 4, "warmup_ratio": 0.0},
        "checkpointing": {"save_every": 0},
        "logging": {"log_every": 1, "progress_bar": False, "report_to": []},
    })  # fmt: skip
    return ["--config", str(config), f"output_dir={tmp_path / 'run'}", *extra]
