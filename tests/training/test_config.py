"""Run configs: YAML plus key=value overrides, refused with the valid keys before anything is built; the
objective is declared once (`tasks.<name>.objective`, its hyperparameters in `objective_config`) and a
model config or saved model that contradicts it is refused, naming both."""

import dataclasses
from pathlib import Path

import pytest

from mmfm.models import MMFMVisionConfig, MMFMVisionForMAE
from mmfm.models.modeling_mmfm_vision_mae import MAEConfig
from mmfm.objectives import get_objective, objectives
from mmfm.training.config import (
    EvaluationSection,
    RunConfig,
    TaskSection,
    check_saved_model,
    describe_keys,
    load_config,
    parse_command_line,
)
from mmfm.training.tasks import build_model, build_model_config

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"
DEFAULT = Path(__file__).resolve().parent / "mlm_demo.yaml"  # an MLM run (the embedded default binds)


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
        ("tasks.mlm.model.init_from=/some/model", FileNotFoundError, ["tasks.mlm.model.init_from", "/some/model"]),
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


def test_unknown_model_config_fields_are_refused_while_parsing():
    with pytest.raises(ValueError) as raised:
        parse_command_line(["tasks.mlm.model.config.hidden_sise=64"], default=DEFAULT)
    assert "hidden_sise" in str(raised.value) and "hidden_size" in str(raised.value)
    # build_model_config checks it too, for sections built by hand.
    config = parse_command_line([], default=DEFAULT)
    config.tasks["mlm"].model.config["hidden_sise"] = 64
    with pytest.raises(ValueError, match="hidden_sise"):
        build_model_config(config.tasks["mlm"], "tasks.mlm")


def test_the_recipe_refuses_a_typo_before_building_anything(tmp_path):
    from ._runs import run_in_process

    with pytest.raises(ValueError, match="training.max_step"):
        run_in_process(f"output_dir={tmp_path / 'run'}", "training.max_step=3")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- objectives


def _task(*overrides: str, name: str = "v", objective: str = "mae", subset: str = "digits"):
    config = parse_command_line(
        [f"tasks.{name}.objective={objective}", f"tasks.{name}.data.subsets=[{subset}]", *overrides],
        default=DEFAULT,
    )
    return config.tasks[name]


def test_objective_config_with_an_unknown_key_lists_the_valid_fields():
    with pytest.raises(ValueError) as raised:
        _task("tasks.v.objective_config.mask_rato=0.5")
    message = str(raised.value)
    assert "tasks.v.objective_config" in message and "mask_rato" in message
    for field in dataclasses.fields(get_objective("mae").config_class):
        assert field.name in message, field.name


@pytest.mark.parametrize("value", ["1.5", "0", "high"])
def test_objective_config_with_an_invalid_value_names_the_field(value):
    with pytest.raises(ValueError) as raised:
        _task(f"tasks.v.objective_config.mask_ratio={value}")
    assert "tasks.v.objective_config" in str(raised.value) and "mask_ratio" in str(raised.value)
    assert value in str(raised.value)


def test_objective_config_reaches_the_model():
    task = _task("tasks.v.objective_config={mask_ratio: 0.5, decoder_hidden_size: 16}",
                 "tasks.v.model.config={image_size: 16, patch_size: 4}")  # fmt: skip
    assert task.objective_config == {"mask_ratio": 0.5, "decoder_hidden_size": 16}
    model = build_model(task, "tasks.v", None, "sdpa")
    assert type(model) is MMFMVisionForMAE
    assert model.objective.mask_ratio == 0.5 and model.objective.decoder_hidden_size == 16
    # The rest comes from the objective's sizes for the `tiny` preset, then its defaults.
    tiny = MAEConfig.presets["tiny"]
    assert model.objective.decoder_num_hidden_layers == tiny["decoder_num_hidden_layers"]
    assert model.objective.norm_pix_loss is MAEConfig().norm_pix_loss
    assert model.config.pretraining_objective == "mae"
    assert model.config.pretraining_config == dataclasses.asdict(model.objective)


def test_decoder_sizes_are_objective_fields_not_encoder_fields():
    with pytest.raises(ValueError) as raised:  # refused while parsing, before any data is read
        _task("tasks.v.model.config.decoder_hidden_size=32")
    assert "decoder_hidden_size" in str(raised.value) and "tasks.v.model.config" in str(raised.value)


def test_model_config_naming_another_objective_is_refused_naming_both():
    with pytest.raises(ValueError) as raised:
        _task("tasks.v.model.config.pretraining_objective=droppos")
    message = str(raised.value)
    assert "tasks.v.model.config" in message and "pretraining_objective" in message and "droppos" in message
    assert "tasks.v.objective" in message and "'mae'" in message


def test_model_config_naming_another_objective_stops_the_run(tmp_path):
    from ._runs import run_in_process

    with pytest.raises(ValueError, match="pretraining_objective"):
        run_in_process(f"output_dir={tmp_path / 'run'}", "tasks={}", "tasks.v.objective=mae",
                       "tasks.v.data.subsets=[digits]", "tasks.v.model.config.pretraining_objective=droppos",
                       "logging.report_to=[]")  # fmt: skip
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "objective, field, value, required",
    [("clm", "is_causal", "false", True), ("mlm", "is_causal", "true", False),
     ("ts_autoregressive", "is_causal", "false", True)],
)  # fmt: skip
def test_model_config_contradicting_the_objective_is_refused_naming_both(objective, field, value, required):
    subset = {"clm": "corpus", "mlm": "corpus", "ts_autoregressive": "ucr"}[objective]
    with pytest.raises(ValueError) as raised:
        _task(f"tasks.t.model.config.{field}={value}", name="t", objective=objective, subset=subset)
    message = str(raised.value)
    assert f"tasks.t.model.config.{field}" in message and "tasks.t.objective" in message
    assert repr(objective) in message and f"{field}={required}" in message


def test_the_objective_fills_what_model_config_leaves_out():
    clm = build_model_config(_task(name="t", objective="clm", subset="corpus"), "tasks.t")
    assert clm.is_causal is True and clm.pooling == "last"  # a requirement and a preference of clm
    mean = _task("tasks.t.model.config.pooling=mean", name="t", objective="clm", subset="corpus")
    assert build_model_config(mean, "tasks.t").pooling == "mean"  # a preference yields to the run
    mae = build_model_config(_task(), "tasks.v")
    assert mae.position_embedding_type == "sincos"
    assert build_model_config(_task("tasks.v.model.config.position_embedding_type=learned"),
                              "tasks.v").position_embedding_type == "learned"  # fmt: skip


@pytest.fixture(scope="module")
def saved_mae(tmp_path_factory):
    """A tiny MAE model saved with `save_pretrained`, as an earlier run exports it."""
    folder = tmp_path_factory.mktemp("saved_mae")
    config = MMFMVisionConfig.from_preset(
        "tiny", image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, pretraining_config=MAEConfig.presets["tiny"],
    )  # fmt: skip
    MMFMVisionForMAE(config).save_pretrained(folder)
    return folder


def test_init_from_a_model_of_another_objective_is_refused_naming_both(saved_mae):
    with pytest.raises(ValueError) as raised:
        _task(f"tasks.v.model.init_from={saved_mae}", objective="droppos")
    message = str(raised.value)
    assert "tasks.v.model.init_from" in message and str(saved_mae) in message and "'mae'" in message
    assert "tasks.v.objective" in message and "'droppos'" in message
    with pytest.raises(ValueError, match="'droppos'"):
        check_saved_model(get_objective("droppos"), str(saved_mae), "tasks.v")
    check_saved_model(get_objective("mae"), str(saved_mae), "tasks.v")  # its own objective continues
    model = build_model(_task(f"tasks.v.model.init_from={saved_mae}"), "tasks.v", None, "sdpa")
    assert type(model) is MMFMVisionForMAE and model.config.pretraining_objective == "mae"


def test_init_from_a_model_of_another_objective_stops_the_run(saved_mae, tmp_path):
    from ._runs import run_in_process

    with pytest.raises(
        ValueError, match=r"pretrained with objective 'mae'.*`tasks\.v\.objective` is 'droppos'"
    ):
        run_in_process(f"output_dir={tmp_path / 'run'}", "tasks={}", "tasks.v.objective=droppos",
                       "tasks.v.data.subsets=[digits]", f"tasks.v.model.init_from={saved_mae}",
                       "logging.report_to=[]")  # fmt: skip
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_init_from_a_model_of_another_modality_is_refused(saved_mae):
    with pytest.raises(ValueError) as raised:
        _task(f"tasks.a.model.init_from={saved_mae}", name="a", objective="ssast", subset="spoken_digits")
    assert "MMFMVisionConfig" in str(raised.value) and "'ssast'" in str(raised.value)


def test_init_from_with_objective_config_is_refused(saved_mae):
    with pytest.raises(ValueError, match=r"tasks\.v\.objective_config"):
        _task(f"tasks.v.model.init_from={saved_mae}", "tasks.v.objective_config.mask_ratio=0.5")


def test_help_lists_every_objective_and_its_fields(capsys):
    text = describe_keys()
    assert "objective_config" in text
    for name, objective in objectives().items():
        line = next((line for line in text.splitlines() if line.strip().startswith(f"{name} (")), None)
        assert line is not None, f"--help does not list {name}"
        assert f"({objective.modality})" in line
        fields_line = text.splitlines()[text.splitlines().index(line) + 1]
        names = [f.name for f in dataclasses.fields(objective.config_class)]
        assert fields_line.strip() == (", ".join(names) or "(none)"), name
    assert len(objectives()) >= 9
    with pytest.raises(SystemExit) as stopped:
        parse_command_line(["--help"], default=DEFAULT)
    assert stopped.value.code == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in objectives()) and "mask_ratio, norm_pix_loss" in printed


def test_evaluations_default_to_the_objective_and_an_empty_list_means_none():
    unset = _task()
    assert unset.evaluation is None
    defaults = get_objective("mae").evaluation
    assert defaults, "MAE declares default evaluations"
    assert unset.evaluations() == [EvaluationSection(**dict(entry)) for entry in defaults]
    assert all(isinstance(e, EvaluationSection) and e.source == "demo" for e in unset.evaluations())
    assert _task("tasks.v.evaluation=[]").evaluations() == []
    chosen = _task("tasks.v.evaluation=[{subset: shapes, probes: [knn]}]").evaluations()
    assert chosen == [EvaluationSection(subset="shapes", probes=["knn"])]
    for name, objective in objectives().items():  # every objective's defaults are valid sections
        sections = TaskSection(objective=name).evaluations()
        assert len(sections) == len(objective.evaluation)
        assert all(section.subset and section.probes for section in sections), name
    # The defaults probe demo subsets, which need not fit a model made for the user's own data.
    assert _task("tasks.v.data.source=/data/my_images").evaluations() == []


def test_evaluation_from_local_data_needs_no_subset(tmp_path):
    task = _task(f"tasks.v.evaluation=[{{source: {tmp_path}}}]")
    assert task.evaluations()[0].source == str(tmp_path) and task.evaluations()[0].subset == ""
    with pytest.raises(ValueError, match=r"tasks\.v\.evaluation\[0\]\.subset"):
        _task("tasks.v.evaluation=[{probes: [knn]}]")


def test_exponent_floats_without_a_dot_are_numbers():
    """PyYAML reads `1e-5` as a string (YAML 1.1 floats need a dot); mmfm reads it as the number it means."""
    from mmfm.training.config import parse_override, read_yaml

    assert parse_override("training.adam_epsilon=1e-6") == (["training", "adam_epsilon"], 1e-6)
    assert parse_override("model.config={layer_norm_eps: 1e-5, num_hidden_layers: 2}")[1] == {
        "layer_norm_eps": 1e-5,
        "num_hidden_layers": 2,
    }
    assert read_yaml("lr: 3E-4\nsteps: 10\nname: 1e\n", "test") == {"lr": 3e-4, "steps": 10, "name": "1e"}
