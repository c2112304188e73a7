"""`import mmfm` registers every model type: Auto classes load mmfm folders without trust_remote_code."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

import mmfm
from mmfm.modalities import modality_specs
from mmfm.objectives import objectives, objectives_of
from tests.model_inputs import ALL_MODELS, build_model, tiny_config


@pytest.mark.parametrize("name", ALL_MODELS)
def test_auto_classes_load_mmfm_folders(name, tmp_path):
    model = build_model(name)
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is type(model.config)
    loaded = AutoModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert type(loaded) is type(model)
    assert loaded.config._attn_implementation == "eager"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_model_types_follow_the_modality_names():
    assert tuple(modality_specs()) == mmfm.MODALITIES
    for modality, config_class in mmfm.CONFIG_CLASSES.items():
        assert config_class.model_type == f"mmfm_{modality}"
        assert AutoConfig.for_model(f"mmfm_{modality}").__class__ is config_class
        spec = modality_specs()[modality]
        assert spec.config_class is config_class
        assert spec.encoder_class is mmfm.ENCODER_CLASSES[modality]
    assert mmfm.MMFMConfig.model_type == "mmfm"


def test_every_objective_belongs_to_a_modality_with_its_default_first():
    registered = objectives()
    assert {objective.modality for objective in registered.values()} == set(mmfm.MODALITIES)
    for modality, spec in modality_specs().items():
        of_modality = objectives_of(modality)
        assert of_modality[0].name == spec.default_objective
        assert {o.name for o in of_modality} == {n for n, o in registered.items() if o.modality == modality}
        for objective in of_modality:
            assert objective.model_class.config_class is spec.config_class
            assert objective.model_class.objective_name == objective.name


@pytest.mark.parametrize("modality", mmfm.MODALITIES)
def test_pretraining_auto_class_gives_a_bare_encoder_its_default_objective(modality, tmp_path):
    """A folder holding only an encoder loads into the modality's default objective, encoder weights kept."""
    torch.manual_seed(0)
    encoder = build_model(modality)
    encoder.save_pretrained(tmp_path)
    model = AutoModelForPreTraining.from_pretrained(tmp_path)
    default = objectives_of(modality)[0]
    assert type(model) is default.model_class
    assert model.config.pretraining_objective == default.name
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value, rtol=0, atol=0)


def test_presets_scale_up():
    for modality, config_class in mmfm.CONFIG_CLASSES.items():
        sizes = [config_class.from_preset(p).hidden_size for p in ("tiny", "small", "base")]
        assert sizes == [32, 384, 768], modality
    assert tiny_config("vision").image_size == 32
