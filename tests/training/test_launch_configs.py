"""Static checks of the launch configurations: DeepSpeed JSONs in `ds_configs/` and Accelerate YAMLs in
`recipes/accelerate/`. Nothing is launched; each file is parsed by the library that will consume it."""

import json
import re
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DeepSpeedPlugin, DistributedType

REPO = Path(__file__).resolve().parents[2]
DS_DIR = REPO / "ds_configs"
ACCELERATE_DIR = REPO / "recipes" / "accelerate"

DS_CONFIGS = sorted(DS_DIR.glob("*.json"))
ACCELERATE_CONFIGS = sorted(ACCELERATE_DIR.glob("*.yaml"))

# Values Accelerate computes from the Accelerator and the prepared DataLoader / model; the JSONs must leave
# them "auto" so that one DeepSpeed file serves every batch size, world size and precision.
ACCELERATE_OWNED_KEYS = (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "bf16.enabled",
    "fp16.enabled",
)
# Filled by Accelerate from `model.config.hidden_size` under ZeRO-3.
ZERO3_HIDDEN_SIZE_KEYS = (
    "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_param_persistence_threshold",
)
# With `deepspeed_config_file`, Accelerate raises ValueError when the YAML also sets any of these.
FORBIDDEN_WITH_DS_FILE = (
    "gradient_accumulation_steps",
    "gradient_clipping",
    "zero_stage",
    "offload_optimizer_device",
    "offload_param_device",
    "offload_optimizer_nvme_path",
    "offload_param_nvme_path",
    "zero3_save_16bit_model",
    "mixed_precision",
)
# Environment variables set by `accelerate launch` that change how DeepSpeedPlugin reads a config file.
LAUNCHER_ENV = (
    "ACCELERATE_CONFIG_DS_FIELDS",
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
    "ACCELERATE_GRADIENT_CLIPPING",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE",
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
    "ACCELERATE_DEEPSPEED_ZERO3_INIT",
    "ACCELERATE_DEEPSPEED_CONFIG_FILE",
)


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _ids(paths):
    return [p.name for p in paths]


@pytest.fixture
def clean_launcher_env(monkeypatch):
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)


def test_expected_files_exist():
    assert {p.name for p in DS_CONFIGS} >= {"zero2.json", "zero3.json", "zero3_offload.json"}
    expected = {"cpu", "single_gpu", "multi_gpu", "multi_node", "zero2", "zero3", "zero3_offload"}
    assert {p.stem for p in ACCELERATE_CONFIGS} >= expected
    assert (ACCELERATE_DIR / "hostfile").is_file()


@pytest.mark.parametrize("path", DS_CONFIGS, ids=_ids(DS_CONFIGS))
def test_ds_config_leaves_accelerate_values_auto(path):
    config = json.loads(path.read_text())
    stage = _get(config, "zero_optimization.stage")
    assert stage in (2, 3)
    owned = ACCELERATE_OWNED_KEYS + (ZERO3_HIDDEN_SIZE_KEYS if stage == 3 else ())
    not_auto = {key: _get(config, key) for key in owned if _get(config, key) != "auto"}
    assert not not_auto, f"{path.name}: these keys must be 'auto': {not_auto}"
    # The recipe builds torch AdamW and its scheduler; a DeepSpeed section would make prepare() raise.
    assert "optimizer" not in config and "scheduler" not in config


@pytest.mark.parametrize("path", DS_CONFIGS, ids=_ids(DS_CONFIGS))
def test_ds_config_zero_settings(path):
    zero = json.loads(path.read_text())["zero_optimization"]
    assert zero["overlap_comm"] is True and zero["contiguous_gradients"] is True
    if zero["stage"] == 3:
        # The export calls accelerator.get_state_dict(model) on every rank, which needs this under ZeRO-3.
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    if "offload" in path.stem:
        for section in ("offload_optimizer", "offload_param"):
            assert zero[section] == {"device": "cpu", "pin_memory": True}
    else:
        assert "offload_optimizer" not in zero and "offload_param" not in zero


@pytest.mark.parametrize("path", DS_CONFIGS, ids=_ids(DS_CONFIGS))
def test_ds_config_accepted_by_deepspeed_plugin(path, clean_launcher_env):
    config = json.loads(path.read_text())
    stage = config["zero_optimization"]["stage"]
    plugin = DeepSpeedPlugin(hf_ds_config=str(path))
    assert plugin.zero_stage == stage
    assert plugin.zero3_init_flag is (stage == 3)
    offload = "cpu" if "offload" in path.stem else "none"
    assert plugin.offload_optimizer_device == offload and plugin.offload_param_device == offload
    if stage == 3:
        assert plugin.zero3_save_16bit_model is True
    # Nothing is filled before Accelerator.prepare() sees the DataLoader and the model.
    assert plugin.is_auto("train_micro_batch_size_per_gpu") and plugin.is_auto("gradient_accumulation_steps")


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=_ids(ACCELERATE_CONFIGS))
def test_accelerate_config_loads(path):
    assert path.read_text().startswith("#"), f"{path.name} needs a header comment with its launch line"
    config = load_config_from_file(str(path))
    # Guards against an unquoted `distributed_type: NO`, which YAML reads as False.
    assert isinstance(config.distributed_type, DistributedType)
    assert config.num_processes >= 1 and config.num_machines >= 1
    assert config.num_processes % config.num_machines == 0
    assert 0 <= config.machine_rank < config.num_machines


def test_cpu_and_single_gpu_configs():
    cpu = load_config_from_file(str(ACCELERATE_DIR / "cpu.yaml"))
    assert (cpu.distributed_type, cpu.use_cpu, cpu.num_processes) == (DistributedType.NO, True, 1)
    gpu = load_config_from_file(str(ACCELERATE_DIR / "single_gpu.yaml"))
    assert (gpu.distributed_type, gpu.use_cpu, gpu.num_processes) == (DistributedType.NO, False, 1)


def test_multi_gpu_and_multi_node_configs():
    multi = load_config_from_file(str(ACCELERATE_DIR / "multi_gpu.yaml"))
    assert multi.distributed_type == DistributedType.MULTI_GPU
    assert (multi.num_machines, multi.num_processes) == (1, 8)
    node = load_config_from_file(str(ACCELERATE_DIR / "multi_node.yaml"))
    assert node.distributed_type == DistributedType.MULTI_GPU
    assert (node.num_machines, node.num_processes, node.machine_rank) == (2, 16, 0)
    assert (node.main_process_ip, node.main_process_port) == ("10.0.0.1", 29500)
    assert node.same_network is True and node.rdzv_backend == "static"


@pytest.mark.parametrize("stem", ["zero2", "zero3", "zero3_offload"])
def test_deepspeed_accelerate_configs_point_to_ds_configs(stem, clean_launcher_env):
    raw = yaml.safe_load((ACCELERATE_DIR / f"{stem}.yaml").read_text())
    assert "mixed_precision" not in raw, "the recipe sets mixed_precision; here it makes Accelerate raise"
    config = load_config_from_file(str(ACCELERATE_DIR / f"{stem}.yaml"))
    assert config.distributed_type == DistributedType.DEEPSPEED
    ds = config.deepspeed_config
    assert not set(ds) & set(FORBIDDEN_WITH_DS_FILE), set(ds) & set(FORBIDDEN_WITH_DS_FILE)
    # The path is relative to the repository root, where `accelerate launch` is run.
    ds_file = REPO / ds["deepspeed_config_file"]
    assert ds_file.is_file() and ds_file.parent == DS_DIR and ds_file.stem == stem
    stage = json.loads(ds_file.read_text())["zero_optimization"]["stage"]
    assert ds["zero3_init_flag"] is (stage == 3)


def test_hostfile_format():
    # Same pattern as deepspeed.launcher.runner._parse_hostfile; '#' lines and blank lines are skipped there.
    lines = [ln.strip() for ln in (ACCELERATE_DIR / "hostfile").read_text().splitlines()]
    entries = [ln for ln in lines if ln and not ln.startswith("#")]
    parsed = [re.fullmatch(r"(\S+)\s+slots=(\d+)", ln) for ln in entries]
    assert all(parsed), entries
    hosts = {m.group(1): int(m.group(2)) for m in parsed}
    assert len(hosts) == len(entries) == 2 and set(hosts.values()) == {8}
