"""Feature extraction end to end on tiny random encoders over small in-memory datasets."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from PIL import Image as PILImage

import mmfm
from mmfm.evaluation import extract_features, input_columns
from mmfm.processing import MMFMProcessor


def image_dataset(n: int = 12, seed: int = 0) -> Dataset:
    """`n` random RGB images of varied sizes, labelled by their dominant colour channel."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        pixels = rng.integers(0, 80, size=(20 + i, 24, 3), dtype=np.uint8)
        pixels[..., i % 3] += 150
        images.append(PILImage.fromarray(pixels))
        labels.append(i % 3)
    features = Features({"image": Image(), "label": ClassLabel(names=["red", "green", "blue"])})
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


def graph_dataset(n: int = 10, seed: int = 0) -> Dataset:
    """Paths and cycles of 1-7 nodes in the demo corpus graph format, with 3 node features."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        size = int(rng.integers(1, 8))
        edges = [(j, j + 1) for j in range(size - 1)] + ([(size - 1, 0)] if i % 2 and size > 2 else [])
        sources = [a for a, b in edges] + [b for a, b in edges]
        targets = [b for a, b in edges] + [a for a, b in edges]
        rows.append(
            {
                "num_nodes": size,
                "edge_index": [sources, targets],
                "node_features": rng.normal(size=(size, 3)).astype(np.float32).tolist(),
                "label": i % 2,
                "size": float(size),
            }
        )
    features = Features(
        {
            "num_nodes": Value("int64"),
            "edge_index": List(List(Value("int64"))),
            "node_features": List(List(Value("float32"))),
            "label": ClassLabel(names=["path", "cycle"]),
            "size": Value("float32"),
        }
    )
    return Dataset.from_list(rows, features=features)


def as_graphs(dataset: Dataset) -> list[dict]:
    return [
        {
            "num_nodes": row["num_nodes"],
            "edge_index": np.asarray(row["edge_index"]).reshape(2, -1),
            "node_features": np.asarray(row["node_features"], dtype=np.float32),
        }
        for row in dataset
    ]


@pytest.fixture(scope="module")
def vision():
    torch.manual_seed(0)
    config = mmfm.MMFMVisionConfig.from_preset("tiny")
    return mmfm.MMFMVisionModel(config), MMFMProcessor.from_model_config(config)


@pytest.fixture(scope="module")
def graph():
    torch.manual_seed(0)
    config = mmfm.MMFMGraphConfig.from_preset("tiny", node_feature_size=3)
    return mmfm.MMFMGraphModel(config), MMFMProcessor.from_model_config(config)


def test_vision_features_equal_the_pooled_output(vision):
    model, processor = vision
    dataset = image_dataset()
    model.train()  # extraction switches to eval mode and back
    features = extract_features(model, processor, dataset, "vision", batch_size=5, progress=False)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = model(**processor(vision=dataset["image"][:])["vision"]).pooler_output.numpy()
    assert features.shape == (12, model.config.hidden_size)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_vision_features_of_image_files_equal_those_of_the_decoded_images(vision, tmp_path):
    """Images stored as files (a column of paths, or undecoded `datasets.Image` cells as an image folder
    gives them) are opened by the row adapter: the same features as the decoded images."""
    model, processor = vision
    decoded = image_dataset()
    paths = []
    for i, image in enumerate(decoded["image"]):
        paths.append(str(tmp_path / f"{i}.png"))
        image.save(paths[-1])
    expected = extract_features(model, processor, decoded, "vision", batch_size=5, progress=False)
    as_paths = Dataset.from_dict({"image": paths, "label": decoded["label"]})
    undecoded = decoded.cast_column("image", Image(decode=False))
    assert isinstance(undecoded[0]["image"], dict)
    for dataset in (as_paths, undecoded):
        features = extract_features(model, processor, dataset, "vision", batch_size=5, progress=False)
        np.testing.assert_allclose(features, expected, atol=1e-5)


def test_graph_features_equal_the_pooled_output(graph):
    model, processor = graph
    dataset = graph_dataset()
    features = extract_features(model, processor, dataset, "graph", batch_size=3, progress=False)
    with torch.no_grad():
        expected = model(**processor(graph=as_graphs(dataset))["graph"]).pooler_output.numpy()
    assert features.shape == (10, model.config.hidden_size)
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_timeseries_features_with_missing_values_and_truncation():
    torch.manual_seed(0)
    config = mmfm.MMFMTimeSeriesConfig.from_preset("tiny")  # context_length 64
    model, processor = mmfm.MMFMTimeSeriesModel(config), MMFMProcessor.from_model_config(config)
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(int(rng.integers(20, 90)), 2)).astype(np.float32) for _ in range(7)]
    series[0][-3, 1] = np.nan  # recent enough to survive truncation to 64 steps
    dataset = Dataset.from_dict({"past_values": [s.tolist() for s in series]})
    with pytest.raises(ValueError, match=r"Dataset rows 0\.\.3 .*truncation=True"):
        extract_features(model, processor, dataset, "timeseries", batch_size=4, progress=False)
    options = {"truncation": True}
    features = extract_features(
        model, processor, dataset, "timeseries", batch_size=4, progress=False, processor_kwargs=options
    )
    inputs = processor(timeseries=series, timeseries_kwargs=options)["timeseries"]
    assert inputs["past_observed_mask"][0].eq(0).any()  # the NaN reached the processor as missing
    with torch.no_grad():
        expected = model(**inputs).pooler_output.numpy()
    np.testing.assert_allclose(features, expected, atol=1e-5)


def test_composite_model_gives_unnormalised_projected_features(vision):
    encoder, processor = vision
    composite = mmfm.MMFMModel.from_encoders(projection_dim=8, vision=encoder).eval()
    dataset = image_dataset(6)
    features = extract_features(composite, processor, dataset, "vision", batch_size=4, progress=False)
    with torch.no_grad():
        inputs = processor(vision=dataset["image"][:])["vision"]
        expected = composite.get_features("vision", normalize=False, **inputs).numpy()
    assert features.shape == (6, 8)
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert not np.allclose(np.linalg.norm(features, axis=1), 1.0)
    with pytest.raises(ValueError, match="no graph encoder"):
        extract_features(composite, processor, graph_dataset(), "graph", progress=False)


def test_columns_and_modality_errors_are_named(vision, graph):
    model, processor = vision
    with pytest.raises(ValueError, match=r"no column\(s\) \['image'\] needed for vision features"):
        extract_features(model, processor, graph_dataset(), "vision", progress=False)
    with pytest.raises(ValueError, match="Unknown modality 'sound'"):
        extract_features(model, processor, image_dataset(2), "sound", progress=False)
    with pytest.raises(ValueError, match="is a vision encoder .* `modality` is 'graph'"):
        extract_features(model, graph[1], graph_dataset(), "graph", progress=False)
    with pytest.raises(ValueError, match="no graph processor"):
        extract_features(graph[0], processor, graph_dataset(), "graph", progress=False)
    with pytest.raises(ValueError, match="no rows"):
        extract_features(model, processor, image_dataset(2).select([]), "vision", progress=False)
    captions = Dataset.from_dict({"caption": ["a red square"], "label": [0]})
    with pytest.raises(ValueError, match=r"Pass `text_column=` one of \['caption'\]"):
        input_columns(captions, "text")
    assert input_columns(captions, "text", text_column="caption") == ["caption"]
    assert input_columns(graph_dataset(), "graph") == ["num_nodes", "edge_index", "node_features"]
