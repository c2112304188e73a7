"""NaN gradients with a finite loss under DDP and DeepSpeed ZeRO-2 (2 processes, CPU): the step is
skipped and counted on every process alike, and the exported weights stay finite."""

import subprocess

import pytest
import torch

from ._runs import ACCELERATE, REPO, free_port, launch_env, mae_run, metrics, weights

pytestmark = pytest.mark.xdist_group("multiprocess")

FAULTY_RECIPE = REPO / "tests" / "training" / "_faults.py"


@pytest.mark.parametrize("engine", ["ddp", "zero2"])
def test_nan_gradients_skip_the_step_on_every_process(tmp_path, engine):
    launch_args = ["--num_processes", "2", "--main_process_port", str(free_port())]
    if engine == "zero2":
        launch_args = ["--config_file", str(REPO / "recipes" / "accelerate" / "zero2.yaml"), *launch_args]
    else:
        launch_args = ["--multi_gpu", *launch_args]
    env = {**launch_env(), "MMFM_TEST_NAN_GRADIENT_CALLS": "2"}
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        result = subprocess.run(
            [str(ACCELERATE), "launch", *launch_args, str(FAULTY_RECIPE),
             *mae_run(tmp_path, "training.max_steps=3", "training.per_device_batch_size=4")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, log.read_text()[-4000:]
    run = metrics(tmp_path / "run")
    assert run["num_processes"] == 2 and run["nonfinite_steps"] == 1 and run["steps"] == 3
    assert [r["nonfinite_steps"] for r in run["history"]] == [0, 1, 1]
    assert all(torch.isfinite(value).all() for value in weights(tmp_path / "run" / "model").values())


def test_bad_data_on_one_process_stops_every_process_without_a_hang(tmp_path):
    import datasets

    from ._runs import image_run, write_images

    written = write_images(tmp_path / "images", per_class=12)
    cells = [
        {"bytes": b"junk" if i in {3, 11, 19} else p.read_bytes(), "path": None}
        for i, p in enumerate(written)
    ]
    source = tmp_path / "images.parquet"
    datasets.Dataset.from_dict({"image": cells}).cast_column("image", datasets.Image()).to_parquet(
        str(source)
    )
    # 3 bad rows in an epoch over 2 processes: one process passes its cap of 1 while the other trains on.
    run = image_run(tmp_path, {"source": str(source), "max_bad_rows": 1}, "training.max_steps=6",
                    "training.per_device_batch_size=2")  # fmt: skip
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        result = subprocess.run(
            [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", "2", "--main_process_port",
             str(free_port()), str(REPO / "recipes" / "pretrain.py"), *run],
            cwd=REPO, env=launch_env(), stdout=out, stderr=subprocess.STDOUT, timeout=120, check=False,
        )  # fmt: skip
    text = log.read_text()
    assert result.returncode != 0
    assert "more than `tasks.mae.data.max_bad_rows` = 1" in text
    assert "stopped on its data, so every process stops" in text
