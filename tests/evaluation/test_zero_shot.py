"""Zero-shot accuracy on synthetic embeddings with known answers; prompt-ensembled class embeddings and
shared-space row embeddings from a tiny real MMFMModel with the demo tokenizer."""

import numpy as np
import pytest
import torch
from datasets import Dataset

import mmfm
from mmfm.evaluation import (
    DEFAULT_TEMPLATES,
    embed_rows,
    zero_shot_accuracy,
    zero_shot_classifier,
)
from mmfm.processing import MMFMProcessor

from ._binding_models import demo_split, tiny_binding_model


def test_accuracy_on_known_embeddings():
    classes = np.eye(3, dtype=np.float32)
    # Rows 0-2 sit on their class axis; row 3 (label 0) is closest to class 2; row 4 is a scaled class 1.
    embeddings = np.array([[1, 0.1, 0], [0, 1, 0.2], [0.1, 0, 1], [0.2, 0, 1], [0, 5, 0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    assert zero_shot_accuracy(embeddings, labels, classes) == {
        "accuracy": 0.8,
        "chance": 1 / 3,
        "num_classes": 3,
        "num_examples": 5,
    }


def test_class_ids_map_rows_to_labels():
    classes = np.eye(3, dtype=np.float32)
    embeddings = np.eye(3, dtype=np.float32)[[2, 0, 1]]
    # Classifier rows 0, 1, 2 are classes "c", "a", "b"; the examples lie on rows 2, 0, 1: "b", "c", "a".
    report = zero_shot_accuracy(embeddings, ["b", "c", "a"], classes, class_ids=["c", "a", "b"])
    assert report["accuracy"] == 1.0
    report = zero_shot_accuracy(embeddings, ["c", "a", "b"], classes, class_ids=["c", "a", "b"])
    assert report["accuracy"] == 0.0


def test_top5_and_ties_to_the_lower_class():
    num_classes = 8
    classes = np.eye(num_classes, dtype=np.float32)
    # Each example is equally similar to classes 0..5 (a 6-way tie) and orthogonal to 6 and 7.
    embeddings = np.zeros((4, num_classes), dtype=np.float32)
    embeddings[:, :6] = 1
    labels = np.array([0, 4, 5, 7])
    report = zero_shot_accuracy(embeddings, labels, classes)
    # The tie goes to class 0: only label 0 is right at top-1; the top 5 are classes 0-4.
    assert report["accuracy"] == 0.25
    assert report["top5_accuracy"] == 0.5
    assert report["chance"] == 1 / 8 and report["top5_chance"] == 5 / 8
    assert "top5_accuracy" not in zero_shot_accuracy(embeddings[:, :5], [0, 1, 2, 3], np.eye(5))


def test_accuracy_input_errors():
    classes = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"Labels \[7\] are not among"):
        zero_shot_accuracy(classes, [0, 1, 7], classes)
    with pytest.raises(ValueError, match="dimensions"):
        zero_shot_accuracy(np.eye(3, 4), [0, 1, 2], classes)
    with pytest.raises(ValueError, match="distinct"):
        zero_shot_accuracy(classes, [0, 1, 1], classes, class_ids=[0, 1, 1])
    with pytest.raises(ValueError, match=r"\(3,\)"):
        zero_shot_accuracy(classes, [0, 1], classes)


@pytest.fixture(scope="module")
def text_vision():
    return tiny_binding_model(seed=0, modalities=("text", "vision"))


def test_embed_rows_are_unit_get_features(text_vision):
    model, processor = text_vision
    shapes = demo_split("vision", "shapes").select(range(5))
    embeddings = embed_rows(model, processor, shapes, "vision", batch_size=2)
    assert embeddings.shape == (5, 16) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    inputs = processor(vision=list(shapes["image"]))["vision"]
    with torch.no_grad():
        expected = model.get_features("vision", **inputs).numpy()
    np.testing.assert_allclose(embeddings, expected, atol=1e-5)
    # Captions in another column; a list of strings is text.
    captions = list(shapes["caption"])
    from_column = embed_rows(model, processor, shapes, "text", text_column="caption")
    np.testing.assert_allclose(embed_rows(model, processor, captions, "text"), from_column, atol=1e-5)
    assert model.training is False


def test_embed_rows_errors(text_vision):
    model, processor = text_vision
    with pytest.raises(TypeError, match="shared embedding space"):
        embed_rows(model.encoders["vision"], processor, Dataset.from_dict({"text": ["a"]}), "vision")
    with pytest.raises(TypeError, match="list of strings is text"):
        embed_rows(model, processor, ["a circle"], "vision")
    with pytest.raises(ValueError, match="no audio encoder"):
        embed_rows(model, processor, {"audio": [np.zeros(800, dtype=np.float32)]}, "audio")


def test_classifier_is_the_renormalised_mean_of_template_embeddings(text_vision):
    model, processor = text_vision
    names, templates = ["circle", "square", "triangle"], ["a photo of {}.", "a {} shape"]
    classes = zero_shot_classifier(model, processor, names, templates)
    assert classes.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(classes, axis=1), 1, atol=1e-5)
    for c, name in enumerate(names):
        batch = processor(text=[t.replace("{}", name) for t in templates])["text"]
        with torch.no_grad():
            prompts = model.get_features("text", **batch)
        expected = torch.nn.functional.normalize(prompts.mean(dim=0), dim=0).numpy()
        np.testing.assert_allclose(classes[c], expected, atol=1e-5)
    # Default templates come from the modality.
    default = zero_shot_classifier(model, processor, names)
    explicit = zero_shot_classifier(model, processor, names, DEFAULT_TEMPLATES["vision"])
    np.testing.assert_allclose(default, explicit, atol=1e-6)
    audio_default = zero_shot_classifier(model, processor, names, modality="audio")
    assert not np.allclose(audio_default, default)


def test_classifier_errors(text_vision):
    model, processor = text_vision
    with pytest.raises(ValueError, match="twice"):
        zero_shot_classifier(model, processor, ["circle", "circle"])
    with pytest.raises(ValueError, match="placeholder"):
        zero_shot_classifier(model, processor, ["circle"], templates=["a photo"])
    with pytest.raises(ValueError, match="non-empty"):
        zero_shot_classifier(model, processor, [])
    config = mmfm.MMFMConfig(projection_dim=8, vision_config=mmfm.MMFMVisionConfig.from_preset("tiny"))
    vision_only = mmfm.MMFMModel(config)
    with pytest.raises(ValueError, match="no text encoder"):
        zero_shot_classifier(vision_only, MMFMProcessor.from_model_config(config), ["circle"])
