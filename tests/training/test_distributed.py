"""Multi-process training on CPU (gloo): DDP, DeepSpeed ZeRO-2 and ZeRO-3 with 2 processes and two
"nodes" over loopback all end with the weights of one process with twice the batch; a run killed with
SIGKILL and resumed ends with exactly the weights of an uninterrupted run.

Causal LM on packed text blocks: no padding and no random corruption, so the per-process mean losses
average to the single-process loss exactly and the runs must agree to float precision. Every run starts
from the same saved model (`init_from`), so ZeRO-3's partitioned construction cannot change the start.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM

from ._runs import (
    REPO,
    TINY,
    causal_text_config,
    causal_text_start,
    free_port,
    launch,
    launch_command,
    launch_env,
    max_difference,
    metrics,
    run_in_process,
    tiny_overrides,
    weights,
)

# Each test starts 2 training processes: on one pytest worker they do not compete for the same cores.
pytestmark = pytest.mark.xdist_group("multiprocess")

STEPS, BATCH = 4, 4
# float32 sums in a different order (two half batches, bucketed all-reduce) differ in the last bits; Adam
# divides each coordinate by its own gradient scale, so where a gradient is nearly zero that rounding
# moves the weight by a small fraction of the learning rate (3e-3). A different row or a missing
# process moves weights by about the learning rate per step.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A run config over a local JSON-lines file, a saved starting model, and the weights one process
    reaches with batch 2 x BATCH."""
    root = tmp_path_factory.mktemp("distributed")
    texts, start = causal_text_start(root)
    run_config = causal_text_config(root / "clm.yaml", texts, start, STEPS)
    single = root / "single"
    run_in_process(
        "--config", str(run_config), f"output_dir={single}", f"training.per_device_batch_size={2 * BATCH}"
    )
    return {"root": root, "config": run_config, "reference": weights(single / "model"),
            "history": metrics(single)["history"]}  # fmt: skip


def _two_process_run(text_run, name: str, launch_args: list[str]) -> tuple:
    out = text_run["root"] / name
    log = text_run["root"] / f"{name}.log"
    launch(launch_args, ["--config", str(text_run["config"]), f"output_dir={out}",
                         f"training.per_device_batch_size={BATCH}"], log)  # fmt: skip
    return out, log.read_text()


def test_ddp_two_processes_match_one_process_with_twice_the_batch(text_run):
    out, _ = _two_process_run(text_run, "ddp", ["--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                                                "--main_process_port", str(free_port())])  # fmt: skip
    run = metrics(out)
    assert (run["num_processes"], run["distributed_type"]) == (2, "DistributedType.MULTI_CPU")
    assert run["rows_per_step"] == 2 * BATCH
    assert max_difference(weights(out / "model"), text_run["reference"]) < TOLERANCE
    # The losses, averaged over both processes, are the single process's losses: the same rows per step.
    reference = [r["loss"] for r in text_run["history"]]
    assert [r["loss"] for r in run["history"]] == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_two_processes_match(text_run, stage):
    out, log = _two_process_run(text_run, f"zero{stage}", [
        "--config_file", str(REPO / "recipes" / "accelerate" / f"zero{stage}.yaml"), "--num_processes", "2",
        "--main_process_port", str(free_port()),
    ])  # fmt: skip
    run = metrics(out)
    assert (run["num_processes"], run["distributed_type"]) == (2, "DistributedType.DEEPSPEED")
    assert ("built partitioned by DeepSpeed ZeRO-3" in log) == (stage == 3)
    exported = weights(out / "model")
    assert "lm_head.weight" not in exported  # the tied head is written once, as the embeddings
    assert max_difference(exported, text_run["reference"]) < TOLERANCE
    # DeepSpeed's own checkpoint layout, and a consolidated export that loads anywhere with its tying.
    assert (out / "checkpoints" / f"step_{STEPS:08d}" / "pytorch_model").is_dir()
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.lm_head.weight is model.encoder.embeddings.word_embeddings.weight
    assert type(AutoModel.from_pretrained(out / "model")).__name__ == "MMFMTextModel"


def test_two_nodes_over_loopback_match(text_run):
    """Two `accelerate launch` commands, one per "machine", meeting at 127.0.0.1 as real nodes would."""
    out, port = text_run["root"] / "two_nodes", free_port()
    recipe = [
        "--config",
        str(text_run["config"]),
        f"output_dir={out}",
        f"training.per_device_batch_size={BATCH}",
    ]
    with contextlib.ExitStack() as stack:
        nodes = []
        for rank in (0, 1):
            node = ["--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                    "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]  # fmt: skip
            log = stack.enter_context(open(text_run["root"] / f"node{rank}.log", "w"))
            nodes.append(subprocess.Popen(launch_command(node, recipe), cwd=REPO, env=launch_env(), stdout=log,
                                          stderr=subprocess.STDOUT))  # fmt: skip
        for process in nodes:
            assert process.wait(timeout=300) == 0, (text_run["root"] / "node0.log").read_text()[-3000:]
    assert metrics(out)["num_processes"] == 2
    assert max_difference(weights(out / "model"), text_run["reference"]) < TOLERANCE


def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_weights(tmp_path):
    """MAE draws its masks from the global generator and shuffles the demo digits: resume must restore
    the model, optimizer, schedule, every RNG state and the data position for the weights to match."""
    steps, every = 200, 20
    common = ["--config", str(REPO / "recipes" / "configs" / "mae.yaml"), f"training.max_steps={steps}",
              f"checkpointing.save_every={every}", "training.per_device_batch_size=16", "logging.log_every=5",
              "logging.progress_bar=false", "tasks.mae.data.subsets=[digits]"]  # fmt: skip
    common += [f"tasks.mae.model.config.{k}={v}" for k, v in TINY.items()]
    common += [f"tasks.mae.objective_config.decoder_{k}={v}" for k, v in TINY.items()]
    python = [sys.executable, str(REPO / "recipes" / "pretrain.py")]
    env = launch_env()
    uninterrupted = subprocess.Popen([*python, *common, f"output_dir={tmp_path / 'full'}"], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    killed_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "w") as log:
        victim = subprocess.Popen([*python, *common, f"output_dir={killed_dir}"], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        first = killed_dir / "checkpoints" / f"step_{every:08d}"
        deadline = time.time() + 240
        while not first.is_dir() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert victim.poll() is None, f"the run ended before its first checkpoint:\n{log.name}"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    assert not (killed_dir / "metrics.json").exists(), "the run finished before it could be killed"
    assert uninterrupted.wait(timeout=300) == 0
    resumed = subprocess.run([*python, *common, f"output_dir={killed_dir}"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run = metrics(killed_dir)
    assert "/checkpoints/step_" in run["resumed_from"]
    assert [r["step"] for r in run["history"]] == list(range(5, steps + 1, 5))  # no gap, no repeat
    full, again = weights(tmp_path / "full" / "model"), weights(killed_dir / "model")
    assert sorted(full) == sorted(again)
    for key in full:
        assert torch.equal(full[key], again[key]), key


def test_multimodal_run_on_two_processes(tmp_path):
    """Five objectives in one run over 2 DDP processes: each step trains one task on both processes (the
    others' parameters get no gradient, which DDP must tolerate), and every task's model is exported."""
    config = REPO / "recipes" / "configs" / "multimodal.yaml"
    out = tmp_path / "multimodal"
    overrides = [o for o in tiny_overrides(config) if not o.startswith("training.max_steps")]
    launch(["--multi_gpu", "--num_processes", "2", "--main_process_port", str(free_port())],
           ["--config", str(config), f"output_dir={out}", "training.max_steps=8", *overrides],
           tmp_path / "multimodal.log")  # fmt: skip
    run = metrics(out)
    assert run["num_processes"] == 2 and run["steps"] == 8
    trained = {key.split("/")[0] for record in run["history"] for key in record if key.endswith("/loss")}
    assert len(trained) >= 3  # 8 steps drawn by weight over 5 tasks
    assert sorted(run["exported"]) == sorted(run["objectives"])
    for folder in run["exported"].values():
        assert type(AutoModel.from_pretrained(folder)).__name__.endswith("Model")
