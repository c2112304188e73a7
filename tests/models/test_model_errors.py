"""Every model and configuration rejects bad input with a ValueError that names the field; every objective's
model refuses hyperparameters it does not own, a configuration made for another objective, and an encoder
that contradicts its requirements, naming both sides."""

import dataclasses

import pytest
import torch

from mmfm.models import (
    MMFMAudioConfig,
    MMFMConfig,
    MMFMGraphConfig,
    MMFMModel,
    MMFMTextConfig,
    MMFMTimeSeriesConfig,
    MMFMVisionConfig,
)
from mmfm.models.mmfm_layers import InputDtypeError, check_tensor
from mmfm.objectives import get_objective
from tests.model_inputs import (
    OBJECTIVES,
    build_model,
    make_inputs,
    model_config,
    model_inputs,
    objective_config,
    tiny_config,
)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        name: build_model(name).eval()
        for name in ("text", "vision", "audio", "graph", "timeseries", "composite")
    }


def _inputs(name, **changes):
    batch, _ = make_inputs(name, tiny_config(name))
    batch.update(changes)
    return batch


@pytest.mark.parametrize(
    ("name", "changes", "match"),
    [
        (
            "text",
            {"input_ids": torch.zeros(2, 3, 4, dtype=torch.long), "attention_mask": None},
            "input_ids.*shape",
        ),
        ("text", {"input_ids": torch.zeros(2, 0, dtype=torch.long), "attention_mask": None}, "empty text"),
        ("text", {"input_ids": torch.full((1, 4), 5000), "attention_mask": None}, "vocab_size"),
        (
            "text",
            {"input_ids": torch.ones(1, 200, dtype=torch.long), "attention_mask": None},
            "max_position_embeddings",
        ),
        ("text", {"attention_mask": torch.zeros(3, 9, dtype=torch.long)}, "attention_mask.*no real element"),
        ("vision", {"pixel_values": torch.zeros(2, 32, 32)}, "pixel_values.*shape"),
        ("vision", {"pixel_values": torch.zeros(1, 4, 32, 32)}, "channels.*num_channels"),
        ("vision", {"pixel_values": torch.zeros(1, 3, 4, 32)}, "smaller than one 8x8 patch"),
        ("vision", {"pixel_values": torch.zeros(1, 3, 36, 32)}, "multiples of patch_size"),
        ("vision", {"pixel_values": torch.full((1, 3, 32, 32), float("nan"))}, "pixel_values.*NaN"),
        ("audio", {"input_features": torch.zeros(1, 10, 16), "attention_mask": None}, "num_mel_bins"),
        ("audio", {"input_features": torch.zeros(1, 0, 32), "attention_mask": None}, "0 frames"),
        ("audio", {"input_features": torch.zeros(1, 1000, 32), "attention_mask": None}, "max_time_patches"),
        ("audio", {"input_features": torch.full((3, 23, 32), float("inf"))}, "Inf"),
        ("graph", {"node_features": torch.zeros(3, 5, 2)}, "node_feature_size"),
        ("graph", {"edge_index": torch.tensor([[[0], [9]]] * 3)}, "edge_index.*node 9"),
        ("graph", {"edge_index": torch.tensor([[[0], [4]]] * 3)}, "edge_index.*graph 1"),
        ("graph", {"edge_index": torch.zeros(3, 3, 2, dtype=torch.long)}, "edge_index.*shape"),
        ("graph", {"attention_mask": torch.zeros(3, 5, dtype=torch.long)}, "empty inputs"),
        (
            "graph",
            {"node_features": torch.zeros(3, 0, 3), "attention_mask": None, "edge_index": None},
            "empty graph",
        ),
        ("timeseries", {"past_values": torch.zeros(3, 10, 2), "past_observed_mask": None}, "context_length"),
        ("timeseries", {"past_values": torch.zeros(3, 64), "past_observed_mask": None}, "past_values.*shape"),
        ("timeseries", {"past_observed_mask": torch.zeros(3, 64, 2)}, "no observed value"),
        ("timeseries", {"past_values": torch.full((3, 64, 2), float("nan"))}, "NaN"),
    ],
)
def test_encoders_reject_bad_inputs(models, name, changes, match):
    with pytest.raises(ValueError, match=match):
        models[name](**_inputs(name, **changes))


def test_composite_rejects_unknown_and_missing_modalities(models):
    batch, _ = make_inputs("composite", tiny_config("composite"))
    with pytest.raises(ValueError, match=r"Unknown input\(s\) \['video'\].*one mapping per modality"):
        models["composite"](text=batch["text"], video={"pixel_values": torch.zeros(1)})
    with pytest.raises(
        ValueError, match="`pixel_values` belongs to `vision`, which was also given as a mapping"
    ):
        models["composite"](vision=batch["vision"], pixel_values=batch["vision"]["pixel_values"])
    with pytest.raises(ValueError, match="`attention_mask` was given without `input_ids`"):
        models["composite"](attention_mask=batch["text"]["attention_mask"], vision=batch["vision"])
    with pytest.raises(ValueError, match="return_loss=True needs at least two modalities"):
        models["composite"](text=batch["text"], return_loss=True)
    text_only = MMFMModel(MMFMConfig(text_config=tiny_config("text"), projection_dim=8))
    with pytest.raises(ValueError, match="no vision encoder"):
        text_only(vision=batch["vision"])
    with pytest.raises(ValueError, match="at least one"):
        text_only()
    with pytest.raises(TypeError, match="mapping of encoder inputs"):
        text_only(text=batch["text"]["input_ids"])
    with pytest.raises(ValueError, match="includes no encoder"):
        MMFMModel(MMFMConfig())


@pytest.mark.parametrize(
    ("config_class", "fields", "match"),
    [
        (
            MMFMTextConfig,
            {"hidden_size": 30, "num_attention_heads": 4},
            "hidden_size \\(30\\).*divisible.*num_attention_heads",
        ),
        (MMFMTextConfig, {"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
        (MMFMTextConfig, {"hidden_act": "swishy"}, "hidden_act"),
        (MMFMTextConfig, {"position_embedding_type": "alibi"}, "position_embedding_type"),
        (MMFMTextConfig, {"pad_token_id": 9000}, "pad_token_id"),
        (MMFMTextConfig, {"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        (
            MMFMVisionConfig,
            {"image_size": 30, "patch_size": 16},
            "image_size \\(30\\).*multiple of patch_size",
        ),
        (MMFMAudioConfig, {"num_mel_bins": 100, "patch_frequency_size": 16}, "num_mel_bins \\(100\\)"),
        (MMFMGraphConfig, {"random_walk_steps": -1}, "random_walk_steps"),
        (
            MMFMTimeSeriesConfig,
            {"context_length": 60, "patch_length": 16, "patch_stride": 8},
            "multiple of patch_stride",
        ),
        (MMFMTimeSeriesConfig, {"patch_length": 1024, "context_length": 512}, "patch_length"),
        (MMFMTimeSeriesConfig, {"revin_affine": True}, "num_input_channels"),
        (MMFMConfig, {"projection_dim": 0}, "projection_dim"),
    ],
)
def test_configs_reject_inconsistent_sizes(config_class, fields, match):
    with pytest.raises(ValueError, match=match):
        config_class(**fields)


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ValueError, match="available presets.*base.*small.*tiny"):
        MMFMVisionConfig.from_preset("huge")


def test_graph_spatial_bias_refuses_flash_attention(models):
    model = build_model("graph").eval()
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="shortest-path attention bias"):
        model(**_inputs("graph"))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_models_refuse_unknown_or_wrongly_typed_hyperparameters(name):
    model_class = get_objective(name).model_class
    config_class = get_objective(name).config_class
    with pytest.raises(
        ValueError,
        match=rf"{model_class.__name__}: config.pretraining_config is invalid.*"
        rf"Unknown {config_class.__name__} field\(s\) \['no_such_field'\]",
    ):
        model_class(objective_config(name, {"no_such_field": 1}))
    fields = [field.name for field in dataclasses.fields(config_class)]
    if fields:  # every field is typed: a list is never a valid value
        with pytest.raises(ValueError, match=rf"{config_class.__name__}\.{fields[0]} must be"):
            model_class(objective_config(name, {fields[0]: [1]}))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_models_refuse_a_configuration_made_for_another_objective(name):
    objective = get_objective(name)
    others = [o for o in OBJECTIVES if o != name and get_objective(o).modality == objective.modality]
    for other in others or ["no_such_objective"]:
        config = objective_config(name)
        config.pretraining_objective = other
        with pytest.raises(
            ValueError,
            match=rf"{objective.model_class.__name__} trains the '{name}' objective.*"
            rf"made for '{other}'",
        ):
            objective.model_class(config)


@pytest.mark.parametrize("name", [n for n in OBJECTIVES if get_objective(n).encoder_requirements])
def test_objective_models_refuse_encoders_that_contradict_their_requirements(name):
    objective = get_objective(name)
    for field, required in objective.encoder_requirements.items():
        config = objective_config(name)
        setattr(config, field, not required if isinstance(required, bool) else None)
        with pytest.raises(ValueError, match=rf"\({name}\) needs config\.{field}={required!r}"):
            objective.model_class(config)


# ----------------------------------------------------------------------------------------------
# Hostile tensors: wrong dtype, empty batch, another device, not a tensor, wrong shape (issue 9)
# ----------------------------------------------------------------------------------------------

MAIN_INPUTS = {"text": "input_ids", "vision": "pixel_values", "audio": "input_features", "graph": "node_features",
               "timeseries": "past_values"}  # fmt: skip
# Every encoder and every objective's model (by its registry name); the composite by each of its modalities.
HOSTILE_MODELS = (*MAIN_INPUTS, *OBJECTIVES, *(f"composite/{m}" for m in MAIN_INPUTS))


def _modality(name: str) -> str:
    if name.startswith("composite/"):
        return name.split("/")[1]
    return get_objective(name).modality if name in OBJECTIVES else name


@pytest.fixture(scope="module")
def hostile_models():
    torch.manual_seed(0)
    return {}


def _model_and_batch(cache: dict, name: str):
    """The model (built once per module) and a fresh valid batch; for the composite, the batch and the
    sub-batch of the modality under test."""
    key = "composite" if name.startswith("composite/") else name
    if key not in cache:
        cache[key] = build_model(key).eval()
    if key == "composite":
        batch, _ = make_inputs("composite", tiny_config("composite"))
        return cache[key], batch, batch[_modality(name)]
    batch = model_inputs(name, model_config(name))
    return cache[key], batch, batch


def _spoil(tensor: torch.Tensor, hostility: str, argument: str):
    """`tensor` made hostile, and the error (type, message pattern) the model must answer with."""
    named = rf"`{argument}`"
    if hostility == "list":
        return tensor.tolist(), TypeError, rf"{named} must be a torch\.Tensor of shape \("
    if hostility == "meta":
        return (
            tensor.to("meta"),
            ValueError,
            rf"{named} is on device meta, but the model's weights are on cpu",
        )
    if hostility == "shape":
        return tensor[:, :-1], ValueError, rf"{named} must have (the )?shape"
    if argument.endswith("mask"):  # padding/observation masks take bools, integers or floats
        return (
            tensor.to(torch.complex64),
            TypeError,
            rf"{named} must hold 0/1 flags.*got dtype torch\.complex64",
        )
    if tensor.is_floating_point():
        return tensor.long(), TypeError, rf"{named} must hold floating-point values.*got dtype torch\.int64"
    return tensor.float(), TypeError, rf"{named} must hold integer ids.*got dtype torch\.float32"


@pytest.mark.parametrize("hostility", ["dtype", "empty", "meta", "list"])
@pytest.mark.parametrize("name", HOSTILE_MODELS)
def test_models_answer_hostile_main_inputs_naming_them(hostile_models, name, hostility):
    model, batch, inputs = _model_and_batch(hostile_models, name)
    argument = MAIN_INPUTS[_modality(name)]
    if hostility == "empty":
        inputs.update({key: value[:0] for key, value in inputs.items() if isinstance(value, torch.Tensor)})
        error, match = ValueError, rf"`{argument}` has batch size 0 \(shape \(0, "
    else:
        inputs[argument], error, match = _spoil(inputs[argument], hostility, argument)
    with pytest.raises(error, match=match):
        model(**batch)


def _extra_arguments(name: str) -> list[str]:
    """The tensor arguments besides the main input that the model's test batch carries (masks, edges,
    labels, noise): what the registry adds, a new objective's included."""
    batch = model_inputs(name, model_config(name))
    return [k for k, v in batch.items() if isinstance(v, torch.Tensor) and k != MAIN_INPUTS[_modality(name)]]


EXTRA_CASES = [
    (name, argument, hostility)
    for name in (*MAIN_INPUTS, *OBJECTIVES)
    for argument in _extra_arguments(name)
    for hostility in ("dtype", "meta", "list", "shape")
]


@pytest.mark.parametrize(("name", "argument", "hostility"), EXTRA_CASES)
def test_models_answer_hostile_extra_inputs_naming_them(hostile_models, name, argument, hostility):
    model, batch, inputs = _model_and_batch(hostile_models, name)
    inputs[argument], error, match = _spoil(inputs[argument], hostility, argument)
    with pytest.raises(error, match=match):
        model(**batch)


def test_extra_inputs_cover_every_kind():
    """The registry batches exercise labels, masks, edges and every noise input."""
    covered = {argument for _, argument, _ in EXTRA_CASES}
    assert {"labels", "substitution_labels", "attention_mask", "past_observed_mask", "edge_index", "noise",
            "position_noise", "substitution_noise"} <= covered  # fmt: skip


@pytest.mark.parametrize(
    ("name", "changes", "error", "match"),
    [
        ("text", {"position_ids": torch.zeros(3, 9)}, TypeError, r"`position_ids` must hold integer ids"),
        ("text", {"position_ids": torch.zeros(3, 8, dtype=torch.long)}, ValueError,
         r"`position_ids` must have the shape of `input_ids` \(3, 9\)"),
        ("text", {"input_ids": None, "inputs_embeds": torch.zeros(3, 9, 32, dtype=torch.long)}, TypeError,
         r"`inputs_embeds` must hold floating-point values"),
        ("text", {"input_ids": torch.zeros(3, 9, dtype=torch.int16)}, TypeError,
         r"`input_ids` must hold integer ids \(torch\.long or torch\.int32\), got dtype torch\.int16"),
        ("vision", {"pixel_values": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)}, TypeError,
         r"`pixel_values` must hold floating-point values.*torch\.uint8.*image processor"),
        ("vision", {"visible_indices": torch.zeros(3, 4)}, TypeError, r"`visible_indices` must hold integer ids"),
        ("vision", {"visible_indices": [[0, 1]] * 3}, TypeError, r"`visible_indices` must be a torch\.Tensor"),
        ("graph", {"edge_index": torch.zeros(3, 2, 1, dtype=torch.bool)}, TypeError,
         r"`edge_index` must hold integer ids.*torch\.bool"),
    ],
)  # fmt: skip
def test_encoders_answer_hostile_optional_inputs(models, name, changes, error, match):
    with pytest.raises(error, match=match):
        models[name](**_inputs(name, **changes))


def test_masked_token_flags_on_another_device_are_refused():
    model = build_model("ssast").eval()
    batch = model_inputs("ssast", model_config("ssast"))
    flags = torch.zeros(3, 24, dtype=torch.bool, device="meta")
    with pytest.raises(ValueError, match=r"`masked_patches` is on device meta.*weights are on cpu"):
        model.encoder(batch["input_features"], batch["attention_mask"], masked_patches=flags)
    with pytest.raises(TypeError, match=r"`masked_patches` must be a torch\.Tensor"):
        model.encoder(batch["input_features"], batch["attention_mask"], masked_patches=[[True] * 24] * 3)


def test_dtype_errors_are_type_errors_and_value_errors():
    """Wrong dtypes are `TypeError`s, as transformers users expect, and stay `ValueError`s for callers that
    caught mmfm's earlier errors on integer labels and edge ids."""
    assert issubclass(InputDtypeError, TypeError) and issubclass(InputDtypeError, ValueError)


def test_weights_on_the_meta_device_skip_the_device_check():
    """Weights offloaded to the meta device (accelerate's big-model inference) are moved in by hooks later:
    inputs are not refused for their device then."""
    check_tensor("pixel_values", torch.zeros(1, 3, 8, 8), "(B, C, H, W)", 4, "float", torch.device("meta"))
    with pytest.raises(
        ValueError, match=r"`pixel_values` is on device meta, but the model's weights are on cpu"
    ):
        check_tensor(
            "pixel_values",
            torch.zeros(1, 3, 8, 8, device="meta"),
            "(B, C, H, W)",
            4,
            "float",
            torch.device("cpu"),
        )
