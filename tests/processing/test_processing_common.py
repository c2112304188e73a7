"""Shared helpers of mmfm.processing.mmfm_processing_validation, and what the four processors have in common."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, PreTrainedConfig
from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING
from transformers.utils import TensorType

from mmfm.processing.feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor
from mmfm.processing.graph_processing_mmfm import MMFMGraphProcessor
from mmfm.processing.image_processing_mmfm import MMFMImageProcessor
from mmfm.processing.mmfm_processing_validation import (
    check_finite,
    check_int,
    check_return_tensors,
    make_batch_feature,
    to_numpy,
)
from mmfm.processing.timeseries_processing_mmfm import MMFMTimeSeriesProcessor

PROCESSORS = [MMFMImageProcessor, MMFMAudioFeatureExtractor, MMFMGraphProcessor, MMFMTimeSeriesProcessor]


def test_check_return_tensors():
    assert check_return_tensors("pt") == "pt" and check_return_tensors(TensorType.NUMPY) == "np"
    assert check_return_tensors(None) is None
    with pytest.raises(ValueError, match=r"`return_tensors` must be one of \['pt', 'np', None\], got 'mlx'"):
        check_return_tensors("mlx")


def test_make_batch_feature_follows_transformers_convention():
    data = {"x": np.zeros((2, 3), np.float32), "mask": np.ones((2, 3), np.int64)}
    pt = make_batch_feature(data, "pt")
    assert pt["x"].dtype == torch.float32 and pt["mask"].dtype == torch.int64 and pt["x"].shape == (2, 3)
    listed = make_batch_feature(data, None)
    assert isinstance(listed["x"], list) and len(listed["x"]) == 2 and listed["x"][0].shape == (3,)


def test_helpers_name_the_field():
    with pytest.raises(TypeError, match=r"`max_nodes` must be an int or None, got bool"):
        check_int("max_nodes", True, allow_none=True)
    with pytest.raises(ValueError, match=r"`edge_index` could not be read as a rectangular array"):
        to_numpy([[0, 1, 2], [1, 2]], "edge_index")
    with pytest.raises(
        ValueError, match=r"`x` must hold finite values, got 2 NaN/Inf value\(s\) \(first at index \(1,\)"
    ):
        check_finite(np.array([0.0, np.nan, np.inf]), "x")
    check_finite(np.array([0.0, np.nan]), "x", allow_nan=True)


@pytest.mark.parametrize("cls", PROCESSORS)
def test_common_contract(cls):
    processor = cls()
    assert processor.model_input_names and all(isinstance(name, str) for name in processor.model_input_names)
    settings = json.loads(processor.to_json_string())
    assert settings == json.loads(json.dumps(processor.to_dict()))


class _DummyConfig(PreTrainedConfig):
    model_type = "mmfm_test_dummy_feature_extractor"


@pytest.mark.parametrize("cls", [MMFMGraphProcessor, MMFMTimeSeriesProcessor])
def test_graph_and_timeseries_are_registrable(tmp_path, cls):
    AutoFeatureExtractor.register(_DummyConfig, cls, exist_ok=True)
    try:
        cls().save_pretrained(tmp_path)
        assert type(AutoFeatureExtractor.from_pretrained(tmp_path)) is cls
    finally:
        FEATURE_EXTRACTOR_MAPPING._extra_content.pop(_DummyConfig, None)
