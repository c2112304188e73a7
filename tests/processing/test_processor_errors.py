"""Every processor answers hostile input (a wrong type, a wrong dtype, a wrong layout, a tensor without data)
with a `TypeError`/`ValueError` that names the argument, what it got and what it expects (issue 9)."""

import numpy as np
import pytest
import torch

from mmfm.processing import MMFMImageProcessor, MMFMProcessor, train_tokenizer
from mmfm.processing.feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor
from mmfm.processing.graph_processing_mmfm import MMFMGraphProcessor
from mmfm.processing.timeseries_processing_mmfm import MMFMTimeSeriesProcessor

CLIP = np.zeros(16000, dtype=np.float32)
SENTENCES = ["a red circle", "a blue square on the left", "the quick brown fox"] * 5


def _image(images, **kwargs):
    return MMFMImageProcessor()(images, return_tensors="pt", **kwargs)


def _audio(raw_speech, sampling_rate=16000, **kwargs):
    return MMFMAudioFeatureExtractor()(raw_speech, sampling_rate=sampling_rate, return_tensors="pt", **kwargs)


def _graph(graphs):
    return MMFMGraphProcessor()(graphs, return_tensors="pt")


def _series(series, **kwargs):
    return MMFMTimeSeriesProcessor()(series, return_tensors="pt", **kwargs)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        # images
        (lambda: _image("cat.png"), TypeError, r"`images\[0\]` must be a PIL image, a numpy array or a torch tensor, got str 'cat\.png'"),
        (lambda: _image(5), TypeError, r"`images\[0\]` must be a PIL image.*got int 5"),
        (lambda: _image([]), ValueError, r"`images` is an empty list: expected at least one image"),
        (lambda: _image(np.zeros(10)), ValueError, r"`images\[0\]` must have rank 2 \(H, W\) or 3.*shape \(10,\)"),
        (lambda: _image(np.zeros((3, 8, 8), dtype=bool)), TypeError, r"`images\[0\]` must hold int/unsigned int/float values.*dtype bool"),
        (lambda: _image(np.zeros((7, 32, 32))), ValueError, r"`images\[0\]` has no channel axis: got shape \(7, 32, 32\)"),
        (lambda: _image(torch.zeros(3, 32, 32, device="meta")), ValueError, r"`images\[0\]` is a tensor on the meta device"),
        # audio
        (lambda: _audio("clip.wav"), TypeError, r"`raw_speech` must be a 1-D numpy array, torch tensor or list of floats, got str"),
        (lambda: _audio(np.ones(16000, dtype=np.int16)), TypeError, r"`raw_speech` must hold float values.*int16.*32768"),
        (lambda: _audio([1, 2, 3] * 1000), TypeError, r"`raw_speech` must hold float values.*int64"),
        (lambda: _audio(np.zeros((2, 16000), np.float32)), ValueError, r"`raw_speech` must be a mono waveform of shape \(num_samples,\), got array of shape \(2, 16000\).*x\.mean\(axis=0\)"),
        (lambda: _audio(np.zeros((16000, 2), np.float32)), ValueError, r"`raw_speech` must be a mono waveform.*x\.mean\(axis=1\)"),
        (lambda: _audio(CLIP, sampling_rate=8000), ValueError, r"`sampling_rate` is 8000 Hz but this feature extractor expects 16000 Hz"),
        (lambda: _audio(CLIP, sampling_rate="16k"), TypeError, r"`sampling_rate` must be a number of samples per second.*got str '16k'"),
        (lambda: _audio([]), ValueError, r"`raw_speech` is an empty list"),
        (lambda: _audio(torch.zeros(16000, device="meta")), ValueError, r"`raw_speech` is a tensor on the meta device"),
        # graphs
        (lambda: _graph("C1=CC=CC=C1"), TypeError, r"`graphs` must be a dict with `num_nodes`/`edge_index`/`node_features`.*got str"),
        (lambda: _graph([1, 2]), TypeError, r"`graphs\[0\]` must be a dict.*got int 1"),
        (lambda: _graph({"num_nodes": 2}), ValueError, r"`graphs` has no 'edge_index' key \(keys: \['num_nodes'\]\)"),
        (lambda: _graph({"edge_index": [[0], [1]]}), ValueError, r"`graphs` has neither 'num_nodes' nor 'node_features'"),
        (lambda: _graph({"num_nodes": "2", "edge_index": [[0], [1]]}), TypeError, r"`graphs\['num_nodes'\]` must be an int, got str '2'"),
        (lambda: _graph({"num_nodes": 2, "edge_index": "0-1"}), TypeError, r"`graphs\['edge_index'\]` must be a \(2, E\) array.*got str"),
        (lambda: _graph({"num_nodes": 2, "edge_index": [[0.5], [1]]}), ValueError, r"`graphs\['edge_index'\]` must hold integer node ids"),
        (lambda: _graph({"num_nodes": 2, "edge_index": [[0], [1]], "node_features": "x"}), TypeError, r"`graphs\['node_features'\]` must be a numpy array, a torch tensor"),
        (lambda: _graph({"num_nodes": 2, "edge_index": torch.zeros(2, 1, dtype=torch.long, device="meta")}), ValueError, r"`graphs\['edge_index'\]` is a tensor on the meta device"),
        # time series
        (lambda: _series("1,2,3"), TypeError, r"`series` must be a numpy array, a torch tensor or a \(nested\) list of numbers, got str"),
        (lambda: _series(["a", "b"]), TypeError, r"`series\[0\]` must hold int/unsigned int/float values"),
        (lambda: _series([[[1.0, 2.0], [1.0]]]), ValueError, r"`series\[0\]` could not be read as a rectangular array"),
        (lambda: _series(np.zeros((1, 2, 3, 4))), ValueError, r"`series` must have rank 1 \(L,\) or 2 \(L, C\), got array of shape \(1, 2, 3, 4\)"),
        (lambda: _series([np.zeros(10)], observed_mask="x"), TypeError, r"`observed_mask\[0\]` must be a numpy array"),
        (lambda: _series(torch.zeros(10, device="meta")), ValueError, r"`series` is a tensor on the meta device"),
        # tokenizer training
        (lambda: train_tokenizer("one long document"), TypeError, r"`texts` must be an iterable of strings.*got a single str; wrap it in a list"),
        (lambda: train_tokenizer([1, 2]), TypeError, r"`texts` must yield strings, got int"),
    ],
)  # fmt: skip
def test_processors_answer_hostile_input_naming_it(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.fixture(scope="module")
def processor():
    tokenizer = train_tokenizer(SENTENCES, vocab_size=120, min_frequency=1, model_max_length=32)
    return MMFMProcessor(text=tokenizer, vision=MMFMImageProcessor())


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ({"text": 5}, TypeError, r"`text` must be a string or a list of strings, got int 5"),
        ({"text": ["a red circle", 3]}, TypeError, r"`text\[1\]` is int 3"),
        ({"text": [b"bytes"]}, TypeError, r"`text\[0\]` is bytes"),
        ({"text": []}, ValueError, r"`text` is an empty list"),
        ({"text": "a red circle", "text_kwargs": [("truncation", True)]}, TypeError,
         r"`text_kwargs` must be a dict of .* options.*got list of length 1"),
        ({"vision": "cat.png"}, TypeError, r"`images\[0\]` must be a PIL image"),
        ({"video": [1]}, ValueError, r"Unknown modality or argument\(s\) \['video'\]"),
        ({"audio": [CLIP]}, ValueError, r"has no audio processor"),
    ],
)  # fmt: skip
def test_the_composite_processor_names_the_modality_argument(processor, inputs, error, match):
    with pytest.raises(error, match=match):
        processor(**inputs)
