"""Run configs: YAML plus key=value overrides, refused with the valid keys before anything is built."""

from pathlib import Path

import pytest

from mmfm.training.config import RunConfig, load_config, parse_command_line
from mmfm.training.tasks import build_model_config

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"
DEFAULT = CONFIGS / "default.yaml"


def test_every_recipe_config_parses():
    for path in sorted(CONFIGS.glob("*.yaml")):
        config = load_config(path)
        assert isinstance(config, RunConfig) and config.tasks, path.name


def test_overrides_are_read_as_yaml_values():
    config = parse_command_line([
        "training.max_steps=7", "training.learning_rate=1e-4", "training.max_grad_norm=null",
        "tasks.mlm.data.subsets=[corpus, sentiment]", "logging.report_to=[]", "--seed=3",
        "tasks.mlm.model.config={hidden_size: 64}", "training.mixed_precision=no",
    ], default=DEFAULT)  # fmt: skip
    assert config.training.mixed_precision == "no"  # not YAML's `false`
    assert config.training.max_steps == 7
    assert config.training.learning_rate == pytest.approx(1e-4)  # YAML 1.1 reads `1e-4` as text
    assert config.training.max_grad_norm is None
    assert config.tasks["mlm"].data.subsets == ["corpus", "sentiment"]
    assert config.logging.report_to == []
    assert config.seed == 3
    assert config.tasks["mlm"].model.config == {"hidden_size": 64}  # the mapping replaces the YAML's


def test_a_new_task_can_be_added_from_the_command_line():
    config = parse_command_line(
        ["tasks.mae.objective=mae", "tasks.mae.data.subsets=[digits]"], default=DEFAULT
    )
    assert set(config.tasks) == {"mlm", "mae"}
    assert config.tasks["mae"].model.preset == "tiny"


@pytest.mark.parametrize(
    "override, error, words",
    [
        ("trainig.max_steps=3", ValueError, ["trainig", "Valid keys", "training"]),
        ("training.max_step=3", ValueError, ["training.max_step", "max_steps", "per_device_batch_size"]),
        ("tasks.mlm.data.sources=x", ValueError, ["tasks.mlm.data.sources", "source"]),
        ("training.max_steps=many", TypeError, ["training.max_steps", "int", "many"]),
        ("training.max_steps=true", TypeError, ["training.max_steps"]),
        ("training.mixed_precision=fp8", ValueError, ["training.mixed_precision", "bf16"]),
        ("tasks.mlm.objective=bert", ValueError, ["tasks.mlm.objective", "mlm", "graphmae"]),
        ("training.max_steps=0", ValueError, ["training.max_steps", "> 0"]),
        ("training.warmup_ratio=1.5", ValueError, ["training.warmup_ratio"]),
        ("tasks.mlm.data.subsets=[]", ValueError, ["tasks.mlm.data.subsets"]),
        ("tasks.mlm.model.init_from=/some/model", ValueError, ["init_from", "tasks.mlm.model.config"]),
    ],
)
def test_mistakes_are_refused_with_the_field_and_the_valid_choices(override, error, words):
    with pytest.raises(error) as raised:
        parse_command_line([override], default=DEFAULT)
    for word in words:
        assert word in str(raised.value)


def test_an_argument_that_is_not_key_value_is_refused():
    with pytest.raises(SystemExit):
        parse_command_line(["max_steps"], default=DEFAULT)


def test_a_missing_config_file_is_named():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        parse_command_line(["--config", "nope.yaml"], default=DEFAULT)


def test_unknown_model_config_fields_are_refused_before_the_model_is_built():
    config = parse_command_line(["tasks.mlm.model.config.hidden_sise=64"], default=DEFAULT)
    with pytest.raises(ValueError) as raised:
        build_model_config(config.tasks["mlm"], "tasks.mlm")
    assert "hidden_sise" in str(raised.value) and "hidden_size" in str(raised.value)


def test_the_recipe_refuses_a_typo_before_building_anything(tmp_path):
    from ._runs import run_in_process

    with pytest.raises(ValueError, match="training.max_step"):
        run_in_process(f"output_dir={tmp_path / 'run'}", "training.max_step=3")
    assert not (tmp_path / "run").exists()
