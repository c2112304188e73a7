"""SSAST joint discriminative and generative masked spectrogram patch modeling."""

import pytest
import torch

from mmfm.models import MMFMAudioForSSAST, MMFMAudioModel
from mmfm.models.modeling_mmfm_audio import patchify_spectrogram
from mmfm.objectives import info_nce, masked_mse
from tests.model_inputs import make_inputs, objective_config, tiny_config


def _model(pretraining_config: dict | None = None, **encoder) -> MMFMAudioForSSAST:
    torch.manual_seed(0)
    return MMFMAudioForSSAST(objective_config("ssast", pretraining_config, **encoder))


def _batch():
    batch, _ = make_inputs("audio", tiny_config("audio"))  # clips of 23, 9 and 16 frames, 32 mel bins
    return batch


def test_patch_targets_follow_the_token_order():
    config = tiny_config("audio")  # 4 frames x 8 bins per patch
    features = torch.arange(2 * 8 * 32, dtype=torch.float32).view(2, 8, 32)
    patches = patchify_spectrogram(features, config)
    assert patches.shape == (2, 2 * 4, 4 * 8)
    torch.testing.assert_close(patches[1, 4 + 2], features[1, 4:8, 16:24].reshape(-1))  # time slot 1, band 2


def test_loss_combines_infonce_and_weighted_mse_on_masked_real_patches():
    model = _model().eval()
    batch = _batch()
    out = model(**batch, noise=torch.rand(3, 24))
    valid_patches = [24, 12, 16]  # ceil(frames / 4) time slots x 4 bands
    assert out.masked_patches.sum(dim=1).tolist() == [round(0.75 * n) for n in valid_patches]
    for i, n in enumerate(valid_patches):
        assert not out.masked_patches[i, n:].any()
    assert model.objective.generative_loss_weight == 10.0
    torch.testing.assert_close(out.loss, out.discriminative_loss + 10.0 * out.generative_loss)
    features = batch["input_features"] * batch["attention_mask"].unsqueeze(-1)
    features = torch.nn.functional.pad(features, (0, 0, 0, 1))  # 23 frames -> 24, whole patches
    targets = patchify_spectrogram(features, tiny_config("audio"))
    torch.testing.assert_close(
        out.generative_loss, masked_mse(out.reconstruction, targets, out.masked_patches)
    )


def test_padding_and_masked_content_do_not_leak():
    model = _model().eval()
    batch, noise = _batch(), torch.rand(3, 24)
    out = model(**batch, noise=noise)
    noisy = dict(
        batch, input_features=batch["input_features"] + 9.0 * (1 - batch["attention_mask"]).unsqueeze(-1)
    )
    torch.testing.assert_close(model(**noisy, noise=noise).loss, out.loss)
    frames = out.masked_patches.view(3, 6, 4).any(-1).repeat_interleave(4, dim=1)[:, :23]  # any masked band
    in_masked = out.masked_patches.view(3, 6, 4).all(-1).repeat_interleave(4, dim=1)[:, :23]
    changed = dict(batch, input_features=batch["input_features"] + 5.0 * in_masked.unsqueeze(-1))
    assert frames.any()
    torch.testing.assert_close(model(**changed, noise=noise).reconstruction, out.reconstruction)


def test_losses_fall_over_a_few_steps():
    model = _model().train()
    batch, noise = _batch(), torch.rand(3, 24, generator=torch.Generator().manual_seed(0))
    # Smooth spectrogram-like patterns (random features could not be reconstructed from neighbours).
    time, mel = torch.arange(23.0)[:, None], torch.arange(32.0)[None, :]
    batch["input_features"] = torch.stack([torch.sin(time / (2 + i) + mel / 6 + i) for i in range(3)])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        out = model(**batch, noise=noise)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(out.loss.item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_mask_ratio_and_loss_weight_come_from_the_pretraining_config():
    model = _model({"mask_ratio": 0.5, "generative_loss_weight": 2.0}).eval()
    assert model.config.pretraining_config == {"mask_ratio": 0.5, "generative_loss_weight": 2.0}
    out = model(**_batch(), noise=torch.rand(3, 24))
    assert out.masked_patches.sum(dim=1).tolist() == [round(0.5 * n) for n in (24, 12, 16)]
    torch.testing.assert_close(out.loss, out.discriminative_loss + 2.0 * out.generative_loss)


def test_infonce_accuracy_is_one_for_perfect_predictions():
    targets = torch.eye(6).expand(2, 6, 6)  # orthogonal patches: each prediction matches only its own
    loss, accuracy = info_nce(targets * 20, targets, torch.ones(2, 6, dtype=torch.bool))
    assert accuracy.item() == 1.0 and loss.item() < 1e-3


def test_ssast_bad_input():
    with pytest.raises(ValueError, match="too short to mask"):
        _model(patch_frequency_size=32, patch_time_size=2)(torch.randn(1, 2, 32))  # one frame-based patch
    with pytest.raises(ValueError, match=r"SSASTConfig\.mask_ratio must be strictly between 0 and 1"):
        _model({"mask_ratio": 0.0})
    with pytest.raises(ValueError, match=r"SSASTConfig\.generative_loss_weight must be >= 0"):
        _model({"generative_loss_weight": -1.0})
    with pytest.raises(ValueError, match=r"Unknown SSASTConfig field\(s\) \['cluster_factor'\]"):
        _model({"cluster_factor": 3})
    encoder = MMFMAudioModel(tiny_config("audio"))
    with pytest.raises(ValueError, match="use_mask_token"):
        encoder(torch.randn(1, 8, 32), masked_patches=torch.zeros(1, 8, dtype=torch.bool))
