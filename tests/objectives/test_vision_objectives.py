"""MAE and DropPos: losses against references, reproducible masks, MAE's sine-cosine position table, the DropPos
sigma schedule, learning, bad input."""

import math

import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining
from transformers.models.vit_mae.modeling_vit_mae import (
    ViTMAEEmbeddings,
    build_2d_sinusoidal_position_embedding,
)

import mmfm
from mmfm.models import MMFMVisionForDropPos, MMFMVisionForMAE
from mmfm.models.mmfm_layers import sincos_embedding_2d
from mmfm.models.modeling_mmfm_vision import patchify, unpatchify
from mmfm.models.modeling_mmfm_vision_droppos import position_smoothing_targets
from mmfm.objectives import get_objective, masked_mse, normalize_patch_targets
from tests.model_inputs import objective_config


def _model(objective: str, pretraining_config: dict | None = None, **encoder):
    """The objective's tiny model as the recipe builds it: the objective's preferred encoder fields (sine-cosine
    positions), then `encoder` overrides; its tiny decoder, then `pretraining_config`."""
    torch.manual_seed(0)
    fields = {**get_objective(objective).encoder_defaults, **encoder}
    return get_objective(objective).model_class(objective_config(objective, pretraining_config, **fields))


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
    # mmfm's MAE, with the same targets, computes its loss the same way.
    model = _model("mae", {"norm_pix_loss": norm_pix_loss}).eval()
    with torch.no_grad():
        out = model(pixels, noise=noise)
    assert torch.equal(out.mask, expected.mask.bool())
    torch.testing.assert_close(out.loss, masked_mse(out.logits, target, out.mask))


def test_mae_masks_are_reproducible_from_noise_and_hide_75_percent():
    model = _model("mae").eval()
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    first, second = model(pixels, noise=noise), model(pixels, noise=noise)
    torch.testing.assert_close(first.loss, second.loss, rtol=0, atol=0)
    assert first.mask.sum(dim=1).tolist() == [12, 12]
    assert torch.equal(first.visible_indices, noise.argsort(dim=1)[:, :4])
    assert first.logits.shape == (2, 16, 192)
    assert model.objective.mask_ratio == 0.75 and model.config.pretraining_config["mask_ratio"] == 0.75
    half = _model("mae", {"mask_ratio": 0.5}).eval()(pixels, noise=noise)
    assert half.mask.sum(dim=1).tolist() == [8, 8]


def test_mae_loss_counts_only_removed_patches():
    model = _model("mae").eval()
    pixels, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    out = model(pixels, noise=noise)
    target = normalize_patch_targets(patchify(pixels, 8))
    by_hand = ((out.logits - target) ** 2).mean(-1)[out.mask].mean()
    torch.testing.assert_close(out.loss, by_hand)


# ----------------------------------------------------------------------------------------------
# Sine-cosine positions: MAE's table layout, the default of MAE and DropPos
# ----------------------------------------------------------------------------------------------


def _vitmae_table(grid: int, dim: int) -> torch.Tensor:
    """The (grid * grid, dim) patch position table transformers' ViTMAE encoder adds (class token row dropped)."""
    config = ViTMAEConfig(image_size=grid * 2, patch_size=2, num_channels=1, hidden_size=dim)
    # ViTMAE's own initialisation of its fixed table, called directly: a fresh `ViTMAEModel(config)` of
    # transformers 5.24 leaves the table at zero (checkpoints bring it with their weights).
    embeddings = ViTMAEEmbeddings(config)
    embeddings.initialize_weights()
    table = embeddings.position_embeddings.detach()[0]
    assert torch.equal(table[0], torch.zeros(dim))  # the class token's row
    return table[1:]


@pytest.mark.parametrize(("grid", "dim"), [(4, 32), (7, 64), (14, 96)])
def test_sincos_table_is_vitmae_table(grid, dim):
    ours = sincos_embedding_2d(grid, grid, dim)
    assert ours.shape == (grid * grid, dim) and ours.dtype == torch.float32
    assert torch.equal(ours, _vitmae_table(grid, dim))


def test_sincos_table_layout_columns_first_on_rectangular_grids():
    # transformers' builder lays out [sin_h | cos_h | sin_w | cos_w]; ViTMAE (and MAE's code) swaps the halves.
    rows, columns, dim = 3, 5, 16
    canonical = build_2d_sinusoidal_position_embedding(rows, columns, embed_dim=dim)
    mae_layout = torch.cat([canonical[:, dim // 2 :], canonical[:, : dim // 2]], dim=-1)
    ours = sincos_embedding_2d(rows, columns, dim)
    assert torch.equal(ours, mae_layout)
    # Row-major patch order; the first half of the channels depends only on the column, the second on the row.
    table = ours.view(rows, columns, dim)
    torch.testing.assert_close(table[:, :, : dim // 2], table[:1, :, : dim // 2].expand(rows, -1, -1))
    torch.testing.assert_close(table[:, :, dim // 2 :], table[:, :1, dim // 2 :].expand(-1, columns, -1))
    # Slow reference for one cell: sin/cos of position * 10000^(-i / (dim / 4)).
    r, c, quarter = 2, 3, dim // 4
    omega = [1.0 / 10000 ** (i / quarter) for i in range(quarter)]
    expected = [math.sin(c * w) for w in omega] + [math.cos(c * w) for w in omega]
    expected += [math.sin(r * w) for w in omega] + [math.cos(r * w) for w in omega]
    torch.testing.assert_close(table[r, c], torch.tensor(expected))


@pytest.mark.parametrize("objective", ["mae", "droppos"])
def test_objective_encoders_add_the_mae_sincos_table(objective):
    assert get_objective(objective).encoder_defaults["position_embedding_type"] == "sincos"
    model = _model(objective).eval()
    assert model.config.position_embedding_type == "sincos"
    embeddings = model.encoder.embeddings
    assert embeddings.position_embeddings is None  # nothing learned: the fixed table only
    pixels = torch.randn(2, 3, 32, 32)
    table = sincos_embedding_2d(4, 4, model.config.hidden_size)
    patches = embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)  # (B, 16, D)
    with torch.no_grad():
        tokens = embeddings(pixels)
    torch.testing.assert_close(tokens[:, 1:], patches + table)
    torch.testing.assert_close(tokens[:, 0], embeddings.cls_token[0].expand(2, -1))  # no position on [CLS]
    # The objective's forward encodes the visible patches with their positions (DropPos: the dropped ones
    # get the position mask token instead).
    gen = torch.Generator().manual_seed(0)
    noise, position_noise = torch.rand(2, 16, generator=gen), torch.rand(2, 4, generator=gen)
    kwargs = {"position_noise": position_noise} if objective == "droppos" else {}
    with torch.no_grad():
        out = model(pixels, noise=noise, output_hidden_states=True, **kwargs)
    expected = torch.gather(
        patches + table, 1, out.visible_indices.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
    )
    if objective == "droppos":
        visible_patches = torch.gather(patches, 1, out.visible_indices.unsqueeze(-1).expand_as(expected))
        dropped = out.dropped_positions.unsqueeze(-1)
        expected = torch.where(dropped, visible_patches + embeddings.position_mask_token, expected)
        assert out.dropped_positions.any() and (~out.dropped_positions).any()
    torch.testing.assert_close(out.hidden_states[0][:, 1:], expected)


def test_learned_positions_stay_available():
    model = _model("mae", position_embedding_type="learned")
    assert model.encoder.embeddings.position_embeddings.shape == (1, 17, 32)


# ----------------------------------------------------------------------------------------------
# DropPos
# ----------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("sigma_max", [1.0, 2.0])
def test_droppos_sigma_decays_linearly_to_zero(sigma_max):
    model = _model("droppos", {"position_smoothing_sigma": sigma_max})
    objective = get_objective("droppos")
    for progress, expected in [
        (0.0, sigma_max),
        (0.25, 0.75 * sigma_max),
        (0.5, 0.5 * sigma_max),
        (1.0, 0.0),
    ]:
        kwargs = objective.step_kwargs(model.objective, progress)
        assert kwargs == {"position_smoothing_sigma": pytest.approx(expected, abs=1e-12)}, progress
    assert objective.step_kwargs(model.objective, 0.5)["position_smoothing_sigma"] == 0.5 * sigma_max
    assert objective.step_kwargs(model.objective, 1.0)["position_smoothing_sigma"] == 0.0
    # The schedule never changes the model's recorded maximum.
    assert model.objective.position_smoothing_sigma == sigma_max
    assert model.config.pretraining_config["position_smoothing_sigma"] == sigma_max
    # MAE has no schedule: its training steps take no extra keywords.
    assert get_objective("mae").step_kwargs(_model("mae").objective, 0.5) == {}


def _slow_droppos_loss(logits, visible, dropped, sigma, grid=(4, 4)):
    """Mean over dropped patches of -sum_c t_c log softmax(logits)_c, t_c ∝ exp(-d^2 / sigma^2) (one-hot at 0)."""
    rows, columns = grid
    terms = []
    for b, i in dropped.nonzero().tolist():
        true = int(visible[b, i])
        scores = [float(v) for v in logits[b, i]]
        top = max(scores)
        log_total = top + math.log(sum(math.exp(s - top) for s in scores))
        if sigma == 0:
            weights = [1.0 if c == true else 0.0 for c in range(rows * columns)]
        else:
            weights = []
            for c in range(rows * columns):
                d2 = (true // columns - c // columns) ** 2 + (true % columns - c % columns) ** 2
                weights.append(math.exp(-d2 / sigma**2))
        total = sum(weights)
        terms.append(-sum(w / total * (s - log_total) for w, s in zip(weights, scores)))
    return sum(terms) / len(terms)


def test_droppos_loss_one_hot_at_sigma_zero_and_smoothed_otherwise():
    model = _model("droppos").eval()
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, 32, 32, generator=gen)
    noise, position_noise = torch.rand(3, 16, generator=gen), torch.rand(3, 4, generator=gen)
    with torch.no_grad():
        hard = model(pixels, noise=noise, position_noise=position_noise, position_smoothing_sigma=0.0)
        soft = model(pixels, noise=noise, position_noise=position_noise, position_smoothing_sigma=1.0)
        default = model(pixels, noise=noise, position_noise=position_noise)
        at_end = get_objective("droppos").step_kwargs(model.objective, 1.0)  # the schedule's last step
        end = model(pixels, noise=noise, position_noise=position_noise, **at_end)
    dropped, visible = hard.dropped_positions, hard.visible_indices
    # sigma = 0: plain cross-entropy of the dropped patches' true positions.
    plain = torch.nn.functional.cross_entropy(hard.logits[dropped], visible[dropped])
    torch.testing.assert_close(hard.loss, plain)
    assert hard.loss.item() == pytest.approx(_slow_droppos_loss(hard.logits, visible, dropped, 0.0), rel=1e-5)
    torch.testing.assert_close(end.loss, hard.loss)  # the end of the schedule is one-hot
    # sigma = 1 (the configured maximum, used when no sigma is given): smoothed targets.
    assert soft.loss.item() == pytest.approx(_slow_droppos_loss(soft.logits, visible, dropped, 1.0), rel=1e-5)
    torch.testing.assert_close(default.loss, soft.loss)
    assert abs(soft.loss.item() - hard.loss.item()) > 1e-3
    torch.testing.assert_close(soft.logits, hard.logits)  # sigma changes the targets only


@pytest.mark.parametrize("objective", ["mae", "droppos"])
def test_losses_fall_over_a_few_steps(objective):
    model = _model(objective).train()
    gen = torch.Generator().manual_seed(0)
    # Smooth images (upsampled 4x4 noise): their patches can be predicted from their neighbours.
    coarse = torch.rand(8, 3, 4, 4, generator=gen)
    pixels = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    noise, position_noise = torch.rand(8, 16, generator=gen), torch.rand(8, 4, generator=gen)
    kwargs = (
        {"position_noise": position_noise, "position_smoothing_sigma": 0.0} if objective == "droppos" else {}
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50 if objective == "mae" else 30):  # the tiny MAE needs more steps to lose 10%
        loss = model(pixels, noise=noise, **kwargs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_droppos_rejects_images_of_another_size():
    model = _model("droppos")
    with pytest.raises(ValueError, match="DropPos classifies among the 16 positions"):
        model(torch.randn(1, 3, 48, 48))


def test_forward_rejects_unknown_and_foreign_keywords():
    with pytest.raises(TypeError, match="position_noise"):
        _model("mae")(torch.randn(1, 3, 32, 32), position_noise=torch.rand(1, 4))


def test_encoder_rejects_dropped_positions_without_the_token():
    encoder = mmfm.MMFMVisionModel(mmfm.MMFMVisionConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="use_position_mask_token"):
        encoder(torch.randn(1, 3, 32, 32), dropped_positions=torch.zeros(1, 16, dtype=torch.bool))


@pytest.mark.parametrize(
    ("objective", "fields", "match"),
    [
        ("mae", {"mask_ratio": 1.0}, r"MAEConfig\.mask_ratio must be strictly between 0 and 1"),
        ("droppos", {"mask_ratio": 0.0}, r"DropPosConfig\.mask_ratio must be strictly between 0 and 1"),
        (
            "droppos",
            {"position_drop_ratio": 0.0},
            r"DropPosConfig\.position_drop_ratio must be strictly between",
        ),
        ("droppos", {"position_smoothing_sigma": -1.0}, r"position_smoothing_sigma must be >= 0"),
        ("mae", {"decoder_hidden_size": 30}, r"decoder_hidden_size \(30\) must be divisible by"),
        (
            "droppos",
            {"decoder_num_hidden_layers": 0},
            r"decoder_num_hidden_layers must be a positive integer",
        ),
        ("mae", {"norm_pix_loss": "yes"}, r"MAEConfig\.norm_pix_loss must be a bool"),
        ("mae", {"position_drop_ratio": 0.5}, r"Unknown MAEConfig field\(s\) \['position_drop_ratio'\]"),
    ],
)
def test_pretraining_config_errors(objective, fields, match):
    model_class = get_objective(objective).model_class
    with pytest.raises(ValueError, match=match) as error:
        model_class(objective_config(objective, fields))
    assert "pretraining_config" in str(error.value) and model_class.__name__ in str(error.value)


def test_a_config_of_another_objective_is_refused_naming_both():
    mae_config = objective_config("mae")
    MMFMVisionForMAE(mae_config)
    assert mae_config.pretraining_objective == "mae"  # recorded by the model
    with pytest.raises(
        ValueError, match=r"MMFMVisionForDropPos trains the 'droppos' objective.*made for 'mae'"
    ):
        MMFMVisionForDropPos(mae_config)
    with pytest.raises(ValueError, match=r"'mae' objective.*made for 'simmim'"):
        MMFMVisionForMAE(mmfm.MMFMVisionConfig.from_preset("tiny", pretraining_objective="simmim"))
    with pytest.raises(ValueError, match="sincos positions need hidden_size divisible by 4"):
        mmfm.MMFMVisionConfig.from_preset(
            "tiny", position_embedding_type="sincos", hidden_size=30, num_attention_heads=3
        )


def test_hyperparameters_set_on_the_encoder_config_are_refused():
    """transformers keeps unknown config keywords as attributes; an objective field there would be ignored."""
    config = mmfm.MMFMVisionConfig.from_preset("tiny", mask_ratio=0.5)
    with pytest.raises(
        ValueError, match=r"\['mask_ratio'\] are MAEConfig hyperparameters.*pretraining_config"
    ):
        MMFMVisionForMAE(config)


@pytest.mark.parametrize(("patches", "kept"), [(196, 49), (16, 4), (14, 3), (20, 5)])
def test_mae_keeps_int_of_the_visible_share_as_the_reference(patches, kept):
    """MAE's and DropPos's `len_keep = int(L * (1 - mask_ratio))`."""
    visible, mask, _ = mmfm.objectives.random_masking(2, patches, 0.75, noise=torch.rand(2, patches))
    assert visible.shape == (2, kept) and mask.sum(dim=1).tolist() == [patches - kept] * 2
