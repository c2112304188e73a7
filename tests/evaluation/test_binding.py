"""`evaluate_binding` end to end on a few rows of the demo corpus with tiny random MMFMModels."""

import json
import math

import pytest
from datasets import Dataset

from mmfm.evaluation import PairedSet, ZeroShotSet, evaluate_binding

from ._binding_models import demo_split, tiny_binding_model


@pytest.fixture(scope="module")
def models():
    model, processor = tiny_binding_model(seed=0)
    random_init, _ = tiny_binding_model(seed=1)
    return model, random_init, processor


@pytest.fixture(scope="module")
def data():
    shapes = demo_split("vision", "shapes").select(range(12)).rename_column("caption", "text")
    digits = demo_split("vision", "digits").select(range(20))
    spoken = demo_split("audio", "spoken_digits").select(range(20))
    return shapes, digits, spoken


def cells(report):
    """Every {"model", "chance", ...} cell of a report."""
    if isinstance(report, dict):
        if "model" in report and "chance" in report:
            yield report
        else:
            for value in report.values():
                yield from cells(value)


def test_end_to_end_report(models, data, tmp_path):
    model, random_init, processor = models
    shapes, digits, spoken = data
    report = evaluate_binding(
        model,
        processor,
        pairs={"shapes": shapes},
        zero_shot={"shapes": (shapes, "vision"), "spoken_digits": {"dataset": spoken, "modality": "audio"}},
        emergent={"digits": (spoken, "audio", digits, "vision")},
        random_init_model=random_init,
        batch_size=8,
        output_path=tmp_path / "binding.json",
    )
    assert report["ks"] == [1, 5, 10] and report["random_init"] is True and report["projection_dim"] == 16
    retrieval = report["retrieval"]["shapes"]
    assert retrieval["modalities"] == ["text", "vision"] and retrieval["num_pairs"] == 12
    for direction in ("text_to_vision", "vision_to_text"):
        assert retrieval[direction]["num_queries"] == 12
        for k in (1, 5, 10):
            assert retrieval[direction][f"recall@{k}"]["chance"] == pytest.approx(k / 12)
    zero_shot = report["zero_shot"]
    assert zero_shot["shapes"]["class_names"] == ["circle", "square", "triangle"]
    assert zero_shot["shapes"]["accuracy"]["chance"] == pytest.approx(1 / 3)
    assert "top5_accuracy" not in zero_shot["shapes"]
    assert zero_shot["spoken_digits"]["templates"][0] == "the sound of {}."
    assert zero_shot["spoken_digits"]["top5_accuracy"]["chance"] == pytest.approx(0.5)
    emergent = report["emergent"]["digits"]
    assert emergent["modalities"] == ["audio", "vision"]
    assert set(emergent) >= {"audio_to_vision", "vision_to_audio"}
    all_cells = list(cells(report))
    assert len(all_cells) == 6 + 3 + 6
    for cell in all_cells:
        assert set(cell) == {"model", "chance", "random_init"}
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in cell.values())
    assert json.loads((tmp_path / "binding.json").read_text())["retrieval"] == json.loads(
        json.dumps(report["retrieval"])
    )


def test_same_model_as_random_init_scores_the_same(models, data):
    model, _, processor = models
    shapes, _, _ = data
    report = evaluate_binding(
        model, processor, pairs={"shapes": PairedSet(shapes)}, random_init_model=model, ks=(1, 3)
    )
    for cell in cells(report):
        assert cell["model"] == cell["random_init"]
    assert "zero_shot" in report and report["zero_shot"] == {}


def test_options_text_column_modalities_max_samples_and_string_labels(models, data):
    model, _, processor = models
    shapes, _, _ = data
    captions = shapes.rename_column("text", "caption")
    names = ["circle", "square", "triangle"]
    by_name = shapes.add_column("shape", [names[label] for label in shapes["label"]])  # writes no cache file
    report = evaluate_binding(
        model,
        processor,
        pairs={"captions": PairedSet(captions, modalities=("vision", "text"), text_column="caption")},
        zero_shot={"by_name": ZeroShotSet(by_name, "vision", label_column="shape", class_names=names)},
        max_samples=5,
        seed=3,
    )
    retrieval = report["retrieval"]["captions"]
    assert retrieval["modalities"] == ["vision", "text"] and retrieval["num_pairs"] == 5
    assert set(retrieval) == {"modalities", "num_pairs", "vision_to_text", "text_to_vision"}
    assert report["zero_shot"]["by_name"]["num_examples"] == 5
    assert set(next(cells(report))) == {"model", "chance"}  # no random_init_model
    again = evaluate_binding(
        model, processor, pairs={"captions": (captions, ("vision", "text"), "caption")}, max_samples=5, seed=3
    )
    assert again["retrieval"] == report["retrieval"]


def test_errors_name_the_task(models, data):
    model, _, processor = models
    shapes, digits, spoken = data
    with pytest.raises(ValueError, match="at least one task"):
        evaluate_binding(model, processor)
    with pytest.raises(ValueError, match=r"`pairs\['digits'\]`.*expected exactly two"):
        evaluate_binding(model, processor, pairs={"digits": digits.remove_columns("caption")})
    with pytest.raises(TypeError, match=r"`zero_shot\['x'\]`"):
        evaluate_binding(model, processor, zero_shot={"x": (shapes, "vision", "label", None, None, "extra")})
    with pytest.raises(TypeError, match="datasets.Dataset"):
        evaluate_binding(model, processor, zero_shot={"x": ([1, 2], "vision")})
    unlabelled = Dataset.from_dict({"image": list(shapes["image"][:3]), "label": [0, 1, 2]})
    with pytest.raises(ValueError, match="pass `class_names`"):
        evaluate_binding(model, processor, zero_shot={"x": (unlabelled, "vision")})
    with pytest.raises(ValueError, match="different modalities"):
        evaluate_binding(model, processor, emergent={"x": (digits, "vision", digits, "vision")})
    text_vision, tv_processor = tiny_binding_model(seed=0, modalities=("text", "vision"))
    with pytest.raises(ValueError, match="needs an audio encoder"):
        evaluate_binding(text_vision, tv_processor, emergent={"x": (spoken, "audio", digits, "vision")})
    with pytest.raises(TypeError, match="random_init"):
        evaluate_binding(model, processor, pairs={"s": shapes}, random_init_model=model.encoders["text"])
