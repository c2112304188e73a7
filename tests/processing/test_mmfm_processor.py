"""The composite `MMFMProcessor`: matching a model config, nested batches, save/load layouts, errors."""

import json

import networkx as nx
import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

import mmfm
from mmfm.processing import MMFMAudioFeatureExtractor, MMFMImageProcessor, MMFMProcessor, train_tokenizer
from tests.model_inputs import tiny_config

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a handwritten digit seven on a white background",
    "spoken words and sentences rendered with several voices",
    "molecules are graphs of atoms joined by bonds",
] * 5


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, vocab_size=200, min_frequency=1, model_max_length=64)


@pytest.fixture(scope="module")
def composite(tokenizer):
    config = tiny_config("composite")
    config.text_config.vocab_size = 1000
    return config, MMFMProcessor.from_model_config(config, tokenizer)


def _raw_inputs():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return {
        "text": ["a red circle", "a blue square on the left"],
        "vision": [
            rng.integers(0, 255, (40, 30, 3), dtype=np.uint8),
            rng.integers(0, 255, (16, 16), dtype=np.uint8),
        ],
        "audio": [
            np.sin(2 * np.pi * 440 * t).astype(np.float32),
            np.sin(2 * np.pi * 880 * t[:8000]).astype(np.float32),
        ],
        "graph": [nx.cycle_graph(5), {"num_nodes": 2, "edge_index": [[0], [1]]}],
        "timeseries": [rng.normal(size=(50, 2)), rng.normal(size=(64, 2))],
    }


def _kwargs():
    return {"audio_kwargs": {"sampling_rate": 16000}}


def test_processor_feeds_the_composite_model(composite):
    config, processor = composite
    model = mmfm.MMFMModel(config).eval()
    batch = processor(**_raw_inputs(), **_kwargs())
    assert set(batch) == set(mmfm.MODALITIES)
    assert batch["vision"]["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["audio"]["input_features"].shape[-1] == config.audio_config.num_mel_bins
    assert batch["timeseries"]["past_values"].shape == (2, config.timeseries_config.context_length, 2)
    with torch.no_grad():
        outputs = model(**batch)
    assert outputs.logits["text_vision"].shape == (2, 2)
    assert set(outputs.embeddings) == set(mmfm.MODALITIES)


def test_composite_save_and_load_round_trip(composite, tmp_path):
    _, processor = composite
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["modalities"] == list(mmfm.MODALITIES)
    assert saved["auto_map"] == {"AutoProcessor": "processing_mmfm.MMFMProcessor"}
    assert saved["image_processor"]["image_processor_type"] == "MMFMImageProcessor"
    assert not (tmp_path / "preprocessor_config.json").exists()  # every other processor is in processor_config
    assert isinstance(AutoTokenizer.from_pretrained(tmp_path), type(processor["text"]))
    # transformers' Auto classes read the nested settings: the zero-shot pipelines load a composite export.
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path), MMFMImageProcessor)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), MMFMAudioFeatureExtractor)
    reloaded = MMFMProcessor.from_pretrained(tmp_path)
    assert reloaded.modalities == processor.modalities
    expected, got = processor(**_raw_inputs(), **_kwargs()), reloaded(**_raw_inputs(), **_kwargs())
    for modality in mmfm.MODALITIES:
        for key in expected[modality]:
            torch.testing.assert_close(got[modality][key], expected[modality][key], rtol=0, atol=0)


def test_single_modality_processor_saves_at_the_top_level(tmp_path):
    processor = MMFMProcessor.from_model_config(tiny_config("audio"))
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").exists()
    assert not (tmp_path / "processor_config.json").exists()
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path)).__name__ == "MMFMAudioFeatureExtractor"
    assert MMFMProcessor.from_pretrained(tmp_path).modalities == ("audio",)  # read from its files


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        ({"text": [""]}, ValueError, "empty"),
        ({"text": ["fine", "   "]}, ValueError, "items \\[1\\].*empty"),
        ({"text": []}, ValueError, "empty list"),
        ({"text": [3]}, TypeError, "string"),
        ({"text": ["word " * 100]}, ValueError, "more than 64 tokens.*truncation"),
        ({"video": [1]}, ValueError, "Unknown modality.*video"),
        ({}, ValueError, "at least one"),
    ],
)
def test_processor_rejects_bad_inputs(composite, call, error, match):
    _, processor = composite
    with pytest.raises(error, match=match):
        processor(**call)


def test_truncation_is_explicit(composite):
    _, processor = composite
    batch = processor(text=["word " * 100], text_kwargs={"truncation": True})
    assert batch["text"]["input_ids"].shape[1] == 64


def test_missing_modality_and_mismatched_tokenizer_are_named(tokenizer):
    processor = MMFMProcessor.from_model_config(tiny_config("vision"))
    with pytest.raises(ValueError, match="no text processor"):
        processor(text=["hello"])
    with pytest.raises(ValueError, match="pass `tokenizer`"):
        MMFMProcessor.from_model_config(tiny_config("text"))
    with pytest.raises(ValueError, match="vocab_size"):
        MMFMProcessor.from_model_config(tiny_config("text", vocab_size=100), tokenizer)
    with pytest.raises(TypeError, match="vision"):
        MMFMProcessor(vision=tokenizer)
