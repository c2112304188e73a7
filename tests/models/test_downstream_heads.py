"""Downstream heads behave as transformers' own (`BertForSequenceClassification`, `ViTForImageClassification`,
`PatchTSTForPrediction`): shapes, each problem type's loss against a hand computation, gradients into the
encoder, loading from encoder and pretraining exports, Auto classes with and without mmfm.

The points every model class shares (hidden states, tuples, unknown arguments, pickling, save/load) run in
`test_conformance.py`, which includes every head."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers

from mmfm.models import HEAD_CLASSES, MMFMTimeSeriesForPrediction, MMFMTimeSeriesForRegression
from mmfm.objectives import objectives_of
from tests.model_inputs import HEADS, build_model, head_config, make_inputs, model_inputs, tiny_config

SCRIPT = Path(__file__).with_name("_load_heads_without_mmfm.py")
SEQUENCE_HEADS = [n for n, (_, h) in HEADS.items() if h.head_modules == ("classifier",) and "Token" not in n]


def _head(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = head_config(name, **overrides)
    return build_model(name, config), model_inputs(name, config, seed)


def _output_field(name: str) -> str:
    return "prediction_outputs" if HEADS[name][1] is MMFMTimeSeriesForPrediction else "logits"


def _batch_without_labels(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in ("labels", "future_values")}


@pytest.mark.parametrize("name", HEADS)
def test_output_shapes_and_fields(name):
    model, batch = _head(name)
    model.eval()
    with torch.no_grad():
        output = model(**batch)
    prediction = getattr(output, _output_field(name))
    size = next(iter(batch.values())).shape[0]
    if name.endswith("TokenClassification"):
        assert prediction.shape == (*batch["input_ids"].shape, model.config.num_labels)
    elif name.endswith("Prediction"):
        channels = batch["past_values"].shape[-1]
        assert prediction.shape == (size, model.config.prediction_length, channels)
        assert output.loc.shape == output.scale.shape == (size, 1, channels)
    else:
        assert prediction.shape == (size, model.config.num_labels)
    assert output.loss.shape == () and torch.isfinite(output.loss)
    assert output.hidden_states is None and output.attentions is None
    without = model(**_batch_without_labels(batch))
    assert without.loss is None
    torch.testing.assert_close(getattr(without, _output_field(name)), prediction, rtol=0, atol=1e-6)


def _manual_loss(problem: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if problem == "regression":
        return F.mse_loss(logits.squeeze(-1) if logits.shape[-1] == 1 else logits, labels)
    if problem == "single_label_classification":
        return F.cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels)


PROBLEMS = {
    # problem type -> (config fields, labels for a batch of `size` with `num_labels`), inferred type in comment
    "regression_one_label": ({"num_labels": 1}, lambda g, n: torch.randn(3, generator=g)),
    "regression_several": (
        {"num_labels": 3, "problem_type": "regression"},
        lambda g, n: torch.randn(3, n, generator=g),
    ),
    "single_label": ({"num_labels": 3}, lambda g, n: torch.tensor([2, 0, 1])),
    "multi_label": ({"num_labels": 3}, lambda g, n: torch.randint(0, 2, (3, n), generator=g).float()),
}
EXPECTED_TYPE = {
    "regression_one_label": "regression",
    "regression_several": "regression",
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
}


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name", [n for n in SEQUENCE_HEADS if not n.endswith("Regression")])
def test_each_problem_type_gives_transformers_loss(name, problem):
    fields, make_labels = PROBLEMS[problem]
    model, batch = _head(name, **fields)
    model.eval()
    labels = make_labels(torch.Generator().manual_seed(1), model.config.num_labels)
    output = model(**_batch_without_labels(batch), labels=labels)
    assert model.config.problem_type == EXPECTED_TYPE[problem]  # inferred and recorded, as transformers does
    torch.testing.assert_close(output.loss, _manual_loss(EXPECTED_TYPE[problem], output.logits, labels))


def test_single_label_loss_ignores_minus_100_and_divides_by_num_items():
    model, batch = _head("MMFMTextForSequenceClassification")
    model.eval()
    inputs = _batch_without_labels(batch)
    labels = torch.tensor([2, -100, 1])
    output = model(**inputs, labels=labels)
    logits = output.logits
    torch.testing.assert_close(output.loss, F.cross_entropy(logits[[0, 2]], labels[[0, 2]]))
    summed = model(**inputs, labels=labels, num_items_in_batch=torch.tensor(8)).loss
    torch.testing.assert_close(summed, F.cross_entropy(logits[[0, 2]], labels[[0, 2]], reduction="sum") / 8)


def test_token_classification_loss_is_cross_entropy_over_labelled_tokens():
    model, batch = _head("MMFMTextForTokenClassification")
    model.eval()
    output = model(**batch)
    scored = batch["labels"] != -100
    expected = F.cross_entropy(output.logits[scored], batch["labels"][scored])
    torch.testing.assert_close(output.loss, expected)


def test_time_series_regression_fixes_the_problem_type():
    model, batch = _head("MMFMTimeSeriesForRegression")
    assert model.config.problem_type == "regression"
    output = model.eval()(**batch)  # float labels (B, 2): regression, not multi-label
    torch.testing.assert_close(output.loss, F.mse_loss(output.logits, batch["labels"]))
    with pytest.raises(ValueError, match="problem_type"):
        MMFMTimeSeriesForRegression(
            head_config("MMFMTimeSeriesForRegression", problem_type="multi_label_classification")
        )


def test_time_series_classification_concatenates_fixed_channels():
    free, _ = _head("MMFMTimeSeriesForClassification")
    fixed, _ = _head("MMFMTimeSeriesForClassification", num_input_channels=2)
    assert free.classifier.in_features == free.config.hidden_size
    assert fixed.classifier.in_features == 2 * fixed.config.hidden_size
    batch = model_inputs("MMFMTimeSeriesForClassification", fixed.config)
    assert fixed(**batch).logits.shape == (3, 3)


@pytest.mark.parametrize("revin_affine", [False, True])
def test_forecasts_are_denormalised_and_scored_in_the_input_units(revin_affine):
    overrides = {"num_input_channels": 2, "revin_affine": True} if revin_affine else {}
    model, batch = _head("MMFMTimeSeriesForPrediction", **overrides)
    model.eval()
    if revin_affine:
        with torch.no_grad():
            model.encoder.normalization.affine_weight.copy_(torch.tensor([1.5, 0.5]))
            model.encoder.normalization.affine_bias.copy_(torch.tensor([0.2, -0.1]))
    output = model(**batch)
    encoded = model.encoder(batch["past_values"], past_observed_mask=batch["past_observed_mask"])
    normalised = model.prediction_head(encoded.last_hidden_state.flatten(2)).transpose(1, 2)
    if revin_affine:
        norm = model.encoder.normalization
        normalised = (normalised - norm.affine_bias) / norm.affine_weight
    expected = normalised * encoded.scale + encoded.loc
    torch.testing.assert_close(output.prediction_outputs, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        output.loss, F.mse_loss(expected, batch["future_values"]), rtol=1e-5, atol=1e-5
    )
    # A shifted and scaled input gives the same forecast, shifted and scaled (RevIN's point).
    shifted = model(
        past_values=batch["past_values"] * 10 + 5, past_observed_mask=batch["past_observed_mask"]
    ).prediction_outputs
    torch.testing.assert_close(shifted, output.prediction_outputs * 10 + 5, rtol=1e-4, atol=1e-3)
    mask = torch.ones_like(batch["future_values"])
    mask[:, -1] = 0
    masked = model(**batch, future_observed_mask=mask).loss
    squared = (expected - batch["future_values"]) ** 2
    torch.testing.assert_close(masked, squared[:, :-1].mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", HEADS)
def test_gradients_reach_the_encoder(name):
    model, batch = _head(name)
    model.train()
    model(**batch).loss.backward()
    for head_module in model.head_modules:
        assert getattr(model, head_module).weight.grad.abs().sum() > 0
    first_block = model.encoder.transformer.layers[0].attention.qkv.weight.grad
    assert first_block is not None and first_block.abs().sum() > 0


@pytest.mark.parametrize(
    ("name", "labels", "match"),
    [
        (
            "MMFMTextForSequenceClassification",
            torch.tensor([0.5, 1.0, 0.0]),
            "integer class ids|must have shape",
        ),
        ("MMFMTextForSequenceClassification", torch.tensor([0, 3, 1]), r"\[0, num_labels=3\)"),
        ("MMFMTextForSequenceClassification", torch.tensor([0, 1]), "one entry per sample"),
        ("MMFMVisionForImageClassification", [0, 1, 2], "torch.Tensor"),
        ("MMFMGraphForGraphClassification", torch.ones(3, 2), r"shape \(3, 3\)"),
        ("MMFMTextForTokenClassification", torch.zeros(3, 2, dtype=torch.long), "shape of `input_ids`"),
    ],
)
def test_bad_labels_are_refused_naming_them(name, labels, match):
    model, batch = _head(name)
    with pytest.raises((TypeError, ValueError), match=match):
        model(**_batch_without_labels(batch), labels=labels)


def test_bad_future_values_are_refused_naming_them():
    model, batch = _head("MMFMTimeSeriesForPrediction")
    with pytest.raises(ValueError, match="future_values.*prediction_length=4"):
        model(**_batch_without_labels(batch), future_values=torch.zeros(3, 5, 2))


@pytest.mark.parametrize("name", HEADS)
def test_loads_from_an_encoder_export_with_only_head_keys_missing(name, tmp_path):
    modality, head = HEADS[name]
    torch.manual_seed(0)
    encoder = build_model(modality)
    encoder.save_pretrained(tmp_path)
    model, info = head.from_pretrained(tmp_path, num_labels=2, output_loading_info=True)
    expected_missing = {f"{m}.{p}" for m in head.head_modules for p in ("weight", "bias")}
    assert set(info["missing_keys"]) == expected_missing
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value, rtol=0, atol=0)
    for head_module in head.head_modules:  # freshly initialised as BERT's classifier: N(0, 0.02), zero bias
        layer = getattr(model, head_module)
        assert 0.01 < float(layer.weight.std()) < 0.03 and float(layer.bias.abs().max()) == 0.0


@pytest.mark.parametrize("modality", HEAD_CLASSES)
def test_loads_from_a_pretraining_export_dropping_the_objective_head(modality, tmp_path):
    objective = objectives_of(modality)[0]
    torch.manual_seed(0)
    from tests.model_inputs import objective_config

    pretraining = objective.model_class(objective_config(objective.name))
    pretraining.save_pretrained(tmp_path)
    for head in HEAD_CLASSES[modality]:
        model, info = head.from_pretrained(tmp_path, output_loading_info=True)
        assert set(info["missing_keys"]) == {
            f"{m}.{p}" for m in head.head_modules for p in ("weight", "bias")
        }
        assert not info["unexpected_keys"], info["unexpected_keys"]  # the objective's head, dropped silently
        for key, value in pretraining.encoder.state_dict().items():
            if key in model.encoder.state_dict():
                torch.testing.assert_close(model.encoder.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("name", HEADS)
def test_auto_classes_load_heads_from_encoder_and_head_exports(name, tmp_path):
    modality, head = HEADS[name]
    torch.manual_seed(0)
    build_model(modality).save_pretrained(tmp_path / "encoder")
    saved = json.loads((tmp_path / "encoder" / "config.json").read_text())
    for auto_class in head.auto_classes:
        assert auto_class in saved["auto_map"]
        loaded = getattr(transformers, auto_class).from_pretrained(tmp_path / "encoder")
        first = next(h for h in HEAD_CLASSES[modality] if auto_class in h.auto_classes)
        assert type(loaded) is first  # a bare encoder gets the modality's first head for that Auto class
    model, batch = _head(name)
    model.eval().save_pretrained(tmp_path / "head")
    saved = json.loads((tmp_path / "head" / "config.json").read_text())
    for auto_class in head.auto_classes:
        assert saved["auto_map"][auto_class] == f"modeling_mmfm_{modality}.{name}"
        loaded = getattr(transformers, auto_class).from_pretrained(tmp_path / "head").eval()
        assert type(loaded) is head
        with torch.no_grad():
            torch.testing.assert_close(loaded(**batch).loss, model(**batch).loss, rtol=0, atol=0)
    encoder = transformers.AutoModel.from_pretrained(tmp_path / "head")  # the head's encoder, head dropped
    for key, value in encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value, rtol=0, atol=0)


def test_head_exports_load_without_mmfm(tmp_path):
    """Every head export (and an encoder export, through every head Auto class) loads with
    `trust_remote_code=True` where mmfm cannot be imported, with identical outputs."""
    specs, expected = [], {}
    for name, (modality, head) in HEADS.items():
        model, batch = _head(name)
        model.eval().save_pretrained(tmp_path / name)
        torch.save(batch, tmp_path / f"{name}_inputs.pt")
        with torch.no_grad():
            output = model(**batch)
        for auto_class in head.auto_classes:
            specs.append(f"{name}:{auto_class}")
            expected[f"{name}:{auto_class}"] = (name, output)
    torch.manual_seed(0)
    encoder = build_model("text")
    encoder.save_pretrained(tmp_path / "text_encoder")
    batch, _ = make_inputs("text", tiny_config("text"))
    torch.save(batch, tmp_path / "text_encoder_inputs.pt")
    specs += [
        "text_encoder:AutoModelForSequenceClassification",
        "text_encoder:AutoModelForTokenClassification",
    ]

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), *specs], cwd=tmp_path, env=env, check=True,
                   timeout=300)  # fmt: skip
    remote = torch.load(tmp_path / "remote_outputs.pt")
    for spec, (name, output) in expected.items():
        assert remote[spec]["module"].startswith("transformers_modules."), remote[spec]["module"]
        assert remote[spec]["class"] == name
        field = _output_field(name)
        torch.testing.assert_close(remote[spec]["outputs"][field], getattr(output, field), rtol=0, atol=0)
        torch.testing.assert_close(remote[spec]["outputs"]["loss"], output.loss, rtol=0, atol=0)
    assert (
        remote["text_encoder:AutoModelForSequenceClassification"]["class"]
        == "MMFMTextForSequenceClassification"
    )
    assert remote["text_encoder:AutoModelForTokenClassification"]["class"] == "MMFMTextForTokenClassification"
