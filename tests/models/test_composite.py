"""Behaviour specific to the composite MMFMModel: embeddings, logits, temperature, building from encoders."""

import math

import pytest
import torch

import mmfm
from tests.model_inputs import build_model, make_inputs, tiny_config


@pytest.fixture(scope="module")
def composite():
    torch.manual_seed(0)
    config = tiny_config("composite")
    model = build_model("composite", config).eval()
    batch, _ = make_inputs("composite", config)
    with torch.no_grad():
        output = model(**batch)
    return model, batch, output


def test_logits_are_scaled_cosine_similarities(composite):
    model, _, output = composite
    assert output.logit_scale.item() == pytest.approx(math.exp(model.config.logit_scale_init_value), rel=1e-6)
    pairs = [f"{a}_{b}" for i, a in enumerate(mmfm.MODALITIES) for b in mmfm.MODALITIES[i + 1 :]]
    assert list(output.logits) == pairs
    for key, logits in output.logits.items():
        a, b = key.split("_")
        expected = output.logit_scale * output.embeddings[a] @ output.embeddings[b].T
        torch.testing.assert_close(logits, expected)
    for embeddings in output.embeddings.values():
        torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(embeddings.shape[0]))


def test_logit_scale_is_clamped(composite):
    model, batch, _ = composite
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
        scale = model(text=batch["text"]).logit_scale
        model.logit_scale.fill_(model.config.logit_scale_init_value)
    assert scale.item() == pytest.approx(math.exp(model.config.logit_scale_max), rel=1e-6)


def test_get_features_matches_forward(composite):
    model, batch, output = composite
    with torch.no_grad():
        for modality in mmfm.MODALITIES:
            features = model.get_features(modality, **batch[modality])
            torch.testing.assert_close(features, output.embeddings[modality])
        raw = model.get_features("vision", normalize=False, **batch["vision"])
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), output.embeddings["vision"])
    with pytest.raises(ValueError, match="Unknown modality"):
        model.get_features("video", pixel_values=None)


def test_from_encoders_copies_their_weights(composite):
    _, batch, _ = composite
    torch.manual_seed(1)
    text = mmfm.MMFMTextModel(tiny_config("text")).eval()
    vision = mmfm.MMFMVisionModel(tiny_config("vision")).eval()
    model = mmfm.MMFMModel.from_encoders(projection_dim=8, text=text, vision=vision).eval()
    assert model.config.modalities == ("text", "vision")
    with torch.no_grad():
        expected = vision(**batch["vision"]).pooler_output
        got = model.encoders["vision"](**batch["vision"]).pooler_output
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown modality"):
        mmfm.MMFMModel.from_encoders(speech=text)
