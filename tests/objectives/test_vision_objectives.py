"""MAE and DropPos: losses against references, reproducible masks, learning, bad input."""

import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import mmfm
from mmfm.models.modeling_mmfm_vision import (
    MMFMVisionForPreTraining,
    patchify,
    position_smoothing_targets,
    unpatchify,
)
from mmfm.objectives import masked_mse, normalize_patch_targets


def _model(objective: str, **overrides) -> MMFMVisionForPreTraining:
    torch.manual_seed(0)
    config = mmfm.MMFMVisionConfig.from_preset("tiny", pretraining_objective=objective, **overrides)
    return MMFMVisionForPreTraining(config)


def test_patchify_round_trip_and_layout():
    images = torch.randn(2, 3, 16, 24)
    patches = patchify(images, 8)
    assert patches.shape == (2, 6, 8 * 8 * 3)
    torch.testing.assert_close(patches[0, 1].view(8, 8, 3), images[0, :, 0:8, 8:16].permute(1, 2, 0))
    torch.testing.assert_close(unpatchify(patches, 8, (2, 3), 3), images)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_mae_loss_matches_transformers_vitmae(norm_pix_loss):
    torch.manual_seed(0)
    reference = ViTMAEForPreTraining(
        ViTMAEConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                     decoder_num_attention_heads=4, decoder_intermediate_size=64, norm_pix_loss=norm_pix_loss)
    ).eval()  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    pixels, noise = torch.randn(3, 3, 32, 32, generator=gen), torch.rand(3, 16, generator=gen)
    with torch.no_grad():
        expected = reference(pixels, noise=noise)
    torch.testing.assert_close(patchify(pixels, 8), reference.patchify(pixels))
    target = patchify(pixels, 8)
    target = normalize_patch_targets(target) if norm_pix_loss else target
    torch.testing.assert_close(masked_mse(expected.logits, target, expected.mask.bool()), expected.loss)


def test_mae_masks_are_reproducible_from_noise_and_hide_75_percent():
    model = _model("mae").eval()
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    first, second = model(pixels, noise=noise), model(pixels, noise=noise)
    torch.testing.assert_close(first.loss, second.loss, rtol=0, atol=0)
    assert first.mask.sum(dim=1).tolist() == [12, 12]
    assert torch.equal(first.visible_indices, noise.argsort(dim=1)[:, :4])
    assert first.logits.shape == (2, 16, 192)


def test_mae_loss_counts_only_removed_patches():
    model = _model("mae").eval()
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    out = model(pixels, noise=noise)
    target = normalize_patch_targets(patchify(pixels, 8))
    by_hand = ((out.logits - target) ** 2).mean(-1)[out.mask].mean()
    torch.testing.assert_close(out.loss, by_hand)


def test_droppos_targets_and_dropped_fraction():
    targets = position_smoothing_targets(torch.tensor([0, 5]), (4, 4), sigma=1.0)
    torch.testing.assert_close(targets.sum(-1), torch.ones(2))
    assert targets.argmax(-1).tolist() == [0, 5]
    assert targets[1, 4] > targets[1, 15]  # neighbours get more mass than far cells
    one_hot = position_smoothing_targets(torch.tensor([3]), (4, 4), sigma=0.0)
    assert one_hot[0, 3] == 1 and one_hot.sum() == 1
    model = _model("droppos").eval()
    out = model(torch.randn(2, 3, 32, 32), noise=torch.rand(2, 16), position_noise=torch.rand(2, 4))
    assert out.dropped_positions.sum(dim=1).tolist() == [3, 3]  # 75% of the 4 visible patches
    assert out.logits.shape == (2, 4, 16)
    assert 0.0 <= out.position_accuracy.item() <= 1.0


@pytest.mark.parametrize("objective", ["mae", "droppos"])
def test_losses_fall_over_a_few_steps(objective):
    model = _model(objective).train()
    gen = torch.Generator().manual_seed(0)
    # Smooth images (upsampled 4x4 noise): their patches can be predicted from their neighbours.
    coarse = torch.rand(8, 3, 4, 4, generator=gen)
    pixels = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    noise, position_noise = torch.rand(8, 16, generator=gen), torch.rand(8, 4, generator=gen)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(pixels, noise=noise, position_noise=position_noise, position_smoothing_sigma=0.0).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses


def test_droppos_rejects_images_of_another_size():
    model = _model("droppos")
    with pytest.raises(ValueError, match="DropPos classifies among the 16 positions"):
        model(torch.randn(1, 3, 48, 48))


def test_encoder_rejects_dropped_positions_without_the_token():
    encoder = mmfm.MMFMVisionModel(mmfm.MMFMVisionConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="use_position_mask_token"):
        encoder(torch.randn(1, 3, 32, 32), dropped_positions=torch.zeros(1, 16, dtype=torch.bool))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"position_drop_ratio": 0.0}, "position_drop_ratio"),
        ({"decoder_hidden_size": 30}, "decoder_hidden_size"),
        ({"pretraining_objective": "simmim"}, "pretraining_objective"),
    ],
)
def test_pretraining_config_errors(fields, match):
    with pytest.raises(ValueError, match=match):
        mmfm.MMFMVisionConfig.from_preset("tiny", **fields)
