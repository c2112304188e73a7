"""`import mmfm` registers every model type: Auto classes load mmfm folders without trust_remote_code."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

import mmfm
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
    for modality, config_class in mmfm.CONFIG_CLASSES.items():
        assert config_class.model_type == f"mmfm_{modality}"
        assert AutoConfig.for_model(f"mmfm_{modality}").__class__ is config_class
    assert mmfm.MMFMConfig.model_type == "mmfm"


def test_presets_scale_up():
    for modality, config_class in mmfm.CONFIG_CLASSES.items():
        sizes = [config_class.from_preset(p).hidden_size for p in ("tiny", "small", "base")]
        assert sizes == [32, 384, 768], modality
    assert tiny_config("vision").image_size == 32
