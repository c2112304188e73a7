"""Features of individual encoders named by the foundation issue."""

import pytest
import torch

import mmfm
from tests.model_inputs import tiny_config


def _eval(model_class, config):
    torch.manual_seed(0)
    return model_class(config).eval()


@torch.no_grad()
def test_vision_visible_indices_encode_only_the_kept_patches():
    model = _eval(mmfm.MMFMVisionModel, tiny_config("vision"))
    pixels = torch.randn(2, 3, 32, 32)
    full = model(pixels).last_hidden_state
    every = torch.arange(16).expand(2, -1)
    torch.testing.assert_close(model(pixels, visible_indices=every).last_hidden_state, full)
    kept = torch.tensor([[0, 5, 9, 15], [3, 4, 11, 12]])
    assert model(pixels, visible_indices=kept).last_hidden_state.shape == (2, 1 + 4, 32)


@torch.no_grad()
@pytest.mark.parametrize("positions", ["learned", "sincos"])
def test_vision_accepts_any_patch_multiple_size(positions):
    model = _eval(mmfm.MMFMVisionModel, tiny_config("vision", position_embedding_type=positions))
    for height, width in [(32, 32), (16, 48), (64, 24)]:
        out = model(torch.randn(1, 3, height, width)).last_hidden_state
        assert out.shape == (1, 1 + (height // 8) * (width // 8), 32)
    if positions == "learned":  # the native grid uses the table as it is
        table = model.embeddings.position_embeddings[:, 1:]
        torch.testing.assert_close(model.embeddings.patch_positions(4, 4, torch.float32), table)


@torch.no_grad()
def test_text_causal_attention_ignores_the_future():
    model = _eval(mmfm.MMFMTextModel, tiny_config("text", is_causal=True, pooling="last"))
    ids = torch.randint(5, 1000, (1, 12))
    full = model(ids).last_hidden_state
    prefix = model(ids[:, :7]).last_hidden_state
    torch.testing.assert_close(prefix, full[:, :7], rtol=0, atol=2e-5)
    bidirectional = _eval(mmfm.MMFMTextModel, tiny_config("text"))
    assert not torch.allclose(
        bidirectional(ids[:, :7]).last_hidden_state, bidirectional(ids).last_hidden_state[:, :7]
    )


@torch.no_grad()
def test_text_left_and_right_padding_agree():
    model = _eval(mmfm.MMFMTextModel, tiny_config("text", pooling="cls"))
    ids = torch.randint(5, 1000, (1, 6))
    right = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    left = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask_right = torch.tensor([[1] * 6 + [0] * 3])
    mask_left = mask_right.flip(1)
    a = model(right, attention_mask=mask_right)
    b = model(left, attention_mask=mask_left)
    torch.testing.assert_close(a.pooler_output, b.pooler_output, rtol=0, atol=2e-5)
    torch.testing.assert_close(a.last_hidden_state[:, :6], b.last_hidden_state[:, 3:], rtol=0, atol=2e-5)


@torch.no_grad()
def test_audio_frame_based_patches():
    config = tiny_config("audio", patch_frequency_size=32, patch_time_size=2)
    model = _eval(mmfm.MMFMAudioModel, config)
    out = model(torch.randn(2, 11, 32))
    assert out.last_hidden_state.shape == (2, 1 + 6, 32)  # 11 frames -> 6 two-frame patches


@torch.no_grad()
def test_timeseries_normalisation_is_reversible_and_ignores_missing_values():
    model = _eval(mmfm.MMFMTimeSeriesModel, tiny_config("timeseries"))
    values = torch.randn(1, 64, 3) * torch.tensor([1.0, 10.0, 100.0]) + torch.tensor([0.0, 5.0, -50.0])
    observed = torch.ones_like(values)
    observed[0, 10:20, 1] = 0
    out = model(values, observed)
    kept = observed[0, :, 1].bool()
    assert out.loc[0, 0, 1].item() == pytest.approx(values[0, kept, 1].mean().item(), rel=1e-5)
    assert out.scale[0, 0, 2].item() == pytest.approx(values[0, :, 2].std(unbiased=False).item(), rel=1e-4)
    corrupted = values.clone()
    corrupted[0, 10:20, 1] = 1e6  # a missing value's content must not matter
    torch.testing.assert_close(model(corrupted, observed).pooler_output, out.pooler_output)
    scaled = model(values * 3 + 7, observed).pooler_output  # instance normalisation removes affine changes
    torch.testing.assert_close(scaled, out.pooler_output, rtol=1e-4, atol=1e-4)
