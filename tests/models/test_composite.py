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


# ---------------------------------------------------------------------------------------------- contrastive


@pytest.mark.parametrize("loss_type", ["clip", "siglip"])
def test_return_loss_is_the_mean_contrastive_loss_over_every_pair(composite, loss_type):
    from mmfm.models.mmfm_contrastive import clip_loss, siglip_loss

    _, batch, _ = composite
    torch.manual_seed(0)
    model = build_model("composite", tiny_config("composite", loss_type=loss_type))
    output = model(**batch, return_loss=True)
    embeddings, scale = output.embeddings, output.logit_scale
    pairs = [(a, b) for i, a in enumerate(mmfm.MODALITIES) for b in mmfm.MODALITIES[i + 1 :]]
    if loss_type == "clip":
        expected = torch.stack([clip_loss(embeddings[a], embeddings[b], scale) for a, b in pairs]).mean()
        assert model.logit_bias is None
        assert model.config.logit_scale_init_value == pytest.approx(math.log(1 / 0.07))
    else:
        bias = model.logit_bias.squeeze(0)
        expected = torch.stack(
            [siglip_loss(embeddings[a], embeddings[b], scale, bias) for a, b in pairs]
        ).mean()
        assert bias.item() == -10.0 and model.config.logit_scale_init_value == pytest.approx(math.log(10))
        torch.testing.assert_close(
            output.logits["text_vision"], scale * embeddings["text"] @ embeddings["vision"].T + bias
        )
    torch.testing.assert_close(output.loss, expected)
    output.loss.backward()
    assert model.logit_scale.grad is not None and all(
        p.grad is not None for p in model.projections.parameters()
    )


def test_logits_under_transformers_names_and_the_flat_inputs_of_its_pipelines(composite):
    model, batch, output = composite
    torch.testing.assert_close(output.logits_per_image, output.logits["text_vision"].T)
    torch.testing.assert_close(output.logits_per_audio, output.logits["text_audio"].T)
    torch.testing.assert_close(output.logits_per_text, output.logits["text_vision"])
    with torch.no_grad():
        flat = model(**batch["text"], pixel_values=batch["vision"]["pixel_values"])
        audio = model(input_ids=batch["text"]["input_ids"], attention_mask=batch["text"]["attention_mask"],
                      audio=batch["audio"])  # fmt: skip
    torch.testing.assert_close(flat.logits_per_image, output.logits_per_image)
    assert flat.logits_per_audio is None
    torch.testing.assert_close(audio.logits_per_audio, output.logits_per_audio)


def test_get_modality_features_follow_transformers_contract(composite):
    model, batch, output = composite
    with torch.no_grad():
        text = model.get_text_features(**batch["text"])
        image = model.get_image_features(**batch["vision"])
        series = model.get_timeseries_features(**batch["timeseries"])
    for features, modality in ((text, "text"), (image, "vision"), (series, "timeseries")):
        torch.testing.assert_close(
            torch.nn.functional.normalize(features.pooler_output, dim=-1), output.embeddings[modality]
        )
    assert text.last_hidden_state is not None


def test_towers_start_from_saved_models_and_can_be_locked(tmp_path):
    from mmfm.models import MMFMVisionForMAE
    from tests.model_inputs import objective_config

    torch.manual_seed(0)
    mae = MMFMVisionForMAE(objective_config("mae"))
    mae.save_pretrained(tmp_path / "mae")
    text = mmfm.MMFMTextModel(tiny_config("text"))
    text.save_pretrained(tmp_path / "text")
    model = mmfm.MMFMModel.from_pretrained_towers(
        projection_dim=8, text=tmp_path / "text", vision=tmp_path / "mae"
    )
    assert model.config.vision_config.pretraining_objective is None  # the heads stayed behind
    for name, value in mae.encoder.state_dict().items():
        torch.testing.assert_close(model.encoders["vision"].state_dict()[name], value)
    model.lock_tower("vision")
    assert not any(p.requires_grad for p in model.encoders["vision"].parameters())
    assert all(p.requires_grad for p in model.projections["vision"].parameters())
    model.lock_tower("text", unlocked_last_blocks=1)
    layers = model.encoders["text"].transformer.layers
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in model.encoders["text"].embeddings.parameters())
    with pytest.raises(ValueError, match="unlocked_last_blocks must be in"):
        model.lock_tower("text", unlocked_last_blocks=99)
