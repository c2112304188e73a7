"""`evaluate_encoder`: features once per split, the tasks, the JSON report."""

import json
import math

import numpy as np
import pytest
import torch

import mmfm
from mmfm.evaluation import evaluate_encoder, extract_features, knn_accuracy, linear_probe, write_report
from mmfm.processing import MMFMProcessor
from tests.evaluation.test_features import graph_dataset, image_dataset


@pytest.fixture(scope="module")
def vision():
    torch.manual_seed(0)
    config = mmfm.MMFMVisionConfig.from_preset("tiny")
    return mmfm.MMFMVisionModel(config), MMFMProcessor.from_model_config(config)


def test_classification_report_is_written_as_json(vision, tmp_path):
    model, processor = vision
    train, test = image_dataset(12, seed=0), image_dataset(9, seed=1)
    path = tmp_path / "reports" / "vision" / "colours.json"
    report = evaluate_encoder(
        model, processor, "vision", train, test, output_path=path, batch_size=4, progress=False, knn={"k": 3}
    )
    assert json.loads(path.read_text()) == report
    assert set(report) == {
        "modality", "label_column", "num_train", "num_test", "feature_dim", "model_type", "knn",
        "linear_probe", "seconds",
    }  # fmt: skip
    assert (report["modality"], report["num_train"], report["num_test"]) == ("vision", 12, 9)
    assert report["feature_dim"] == model.config.hidden_size
    assert report["knn"]["k"] == 3 and report["knn"]["weighting"] == "distance"
    assert set(report["linear_probe"]) >= {"accuracy", "macro_f1"}
    assert report["seconds"] > 0
    # The numbers are those of the probes on the extracted features.
    train_features = extract_features(model, processor, train, "vision", progress=False)
    test_features = extract_features(model, processor, test, "vision", progress=False)
    labels, test_labels = np.array(train["label"][:]), np.array(test["label"][:])
    assert report["knn"]["accuracy"] == knn_accuracy(train_features, labels, test_features, test_labels, k=3)
    expected = linear_probe(train_features, labels, test_features, test_labels)
    assert report["linear_probe"]["accuracy"] == pytest.approx(expected["accuracy"])


def test_regression_report_on_graphs(tmp_path):
    torch.manual_seed(0)
    config = mmfm.MMFMGraphConfig.from_preset("tiny", node_feature_size=3)
    model, processor = mmfm.MMFMGraphModel(config), MMFMProcessor.from_model_config(config)
    train, test = graph_dataset(24, seed=0), graph_dataset(8, seed=1)
    report = evaluate_encoder(
        model, processor, "graph", train, test, label_column="size", tasks=("ridge",),
        output_path=tmp_path / "graph.json", progress=False, ridge={"alphas": [0.1, 1.0, 10.0]},
    )  # fmt: skip
    assert set(report["ridge"]) == {"r2", "mae", "alpha"}
    assert report["ridge"]["alpha"] in (0.1, 1.0, 10.0)
    assert math.isfinite(report["ridge"]["r2"]) and report["ridge"]["mae"] >= 0
    assert "knn" not in report
    assert json.loads((tmp_path / "graph.json").read_text())["label_column"] == "size"


def test_harness_errors_are_named(vision):
    model, processor = vision
    data = image_dataset(4)
    with pytest.raises(ValueError, match="no label column 'digit'"):
        evaluate_encoder(model, processor, "vision", data, data, label_column="digit", progress=False)
    with pytest.raises(ValueError, match="`tasks` must be"):
        evaluate_encoder(model, processor, "vision", data, data, tasks=("retrieval",), progress=False)
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['k'\]"):
        evaluate_encoder(model, processor, "vision", data, data, k=3, progress=False)
    with pytest.raises(ValueError, match="not in `tasks`"):
        evaluate_encoder(model, processor, "vision", data, data, tasks=("knn",), ridge={}, progress=False)
    with pytest.raises(ValueError, match="larger than the 4 training samples"):
        evaluate_encoder(model, processor, "vision", data, data, tasks=("knn",), progress=False)


def test_write_report_handles_numpy_and_infinity(tmp_path):
    path = write_report({"a": np.float32(0.5), "b": [np.int64(2)], "c": math.inf}, tmp_path / "x" / "r.json")
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [2], "c": "inf"}
    assert not list(path.parent.glob("*.partial"))
