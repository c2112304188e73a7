"""Masked patch reconstruction (PatchTST) and next-patch forecasting (GPHT-style) for time series."""

import pytest
import torch

import mmfm
from mmfm.models import MMFMTimeSeriesForMaskedPatchModeling, MMFMTimeSeriesForNextPatchPrediction
from mmfm.objectives import get_objective
from tests.model_inputs import objective_config


def _model(
    objective: str, pretraining_config: dict | None = None, attn_implementation: str | None = None, **encoder
):
    """The tiny model of `ts_masked` or `ts_autoregressive` (which brings its `is_causal=True`)."""
    torch.manual_seed(0)
    config = objective_config(objective, pretraining_config, **encoder)
    model_class = get_objective(objective).model_class
    if attn_implementation is None:
        return model_class(config)
    return model_class._from_config(config, attn_implementation=attn_implementation)


def _series(batch: int = 4, channels: int = 2) -> torch.Tensor:
    steps = torch.arange(64, dtype=torch.float32)
    rows = [
        torch.stack([torch.sin(steps / (2 + b + c)) * (1 + c) + b - c for c in range(channels)], dim=-1)
        for b in range(batch)
    ]
    return torch.stack(rows)  # (B, 64, C)


def _slow_masked_loss(out, observed):
    """Mean squared error over the observed values of masked patches, one value at a time."""
    errors = []
    for b in range(observed.shape[0]):
        for c in range(observed.shape[2]):
            for p in range(8):
                if out.mask[b, c, p]:
                    for s in range(8):
                        if observed[b, p * 8 + s, c]:
                            errors.append((out.prediction[b, c, p, s] - out.target[b, c, p, s]) ** 2)
    return torch.stack(errors).mean()


# ----------------------------------------------------------------------------------------------
# Masked patches (PatchTST): kept as attended tokens by default, or removed from attention
# ----------------------------------------------------------------------------------------------


def test_masked_defaults_keep_masked_tokens():
    model = _model("ts_masked")
    assert model.objective.keep_masked_tokens is True and model.objective.mask_ratio == 0.4
    assert model.config.pretraining_config == {"mask_ratio": 0.4, "keep_masked_tokens": True}


@pytest.mark.parametrize("keep_masked_tokens", [True, False])
def test_masked_loss_matches_a_loop_over_masked_observed_values(keep_masked_tokens):
    model = _model("ts_masked", {"keep_masked_tokens": keep_masked_tokens}).eval()
    values, observed = _series(), torch.ones(4, 64, 2)
    observed[0, 3:7, 1] = 0
    observed[2, 40:48, 0] = 0  # a whole patch missing: never a target
    out = model(values, observed, noise=torch.rand(4, 2, 8))
    torch.testing.assert_close(out.loss, _slow_masked_loss(out, observed))
    counts = out.mask.sum(dim=-1).tolist()
    assert counts[0] == counts[1] == counts[3] == [3, 3]  # round(8 * 0.4) = 3 masked of 8
    assert counts[2] == [3, 3]  # round(7 * 0.4) = 3 of the 7 patches holding an observed value
    assert not out.mask[2, 0, 5]


@pytest.mark.parametrize("keep_masked_tokens", [True, False])
def test_masked_patches_do_not_leak_into_the_prediction(keep_masked_tokens):
    model = _model("ts_masked", {"keep_masked_tokens": keep_masked_tokens}).eval()
    values, noise = _series(), torch.rand(4, 2, 8)
    out = model(values, noise=noise)
    hidden = out.mask.repeat_interleave(8, dim=-1).transpose(1, 2)
    changed = model(values + 100.0 * hidden, noise=noise)
    torch.testing.assert_close(changed.prediction, out.prediction)
    torch.testing.assert_close(changed.loc, out.loc)  # masked values are not in the normalisation either
    # The targets do see the change, so the loss does.
    assert not torch.allclose(changed.loss, out.loss)


@pytest.mark.parametrize("keep_masked_tokens", [True, False])
def test_masked_tokens_are_attended_only_when_kept(keep_masked_tokens):
    model = _model(
        "ts_masked", {"keep_masked_tokens": keep_masked_tokens}, attn_implementation="eager"
    ).eval()
    observed = torch.ones(4, 64, 2)
    observed[1, 16:24, 0] = 0  # a missing patch (sample 1, channel 0, patch 2): never attended
    noise = torch.rand(4, 2, 8, generator=torch.Generator().manual_seed(0))
    noise[1, 0, 2] = 2.0  # not masked
    out = model(_series(), observed, noise=noise, output_attentions=True)
    assert len(out.attentions) == model.config.num_hidden_layers
    key_is_masked = out.mask.reshape(8, 8)[:, None, None, :]  # (B * C, 1, 1, P): over heads and queries
    for weights in out.attentions:
        assert weights.shape == (8, 4, 8, 8)
        to_masked = weights.masked_select(key_is_masked.expand_as(weights))
        assert to_masked.numel() == 8 * 3 * 4 * 8  # 3 masked keys per channel, 4 heads, 8 queries
        if keep_masked_tokens:
            assert bool((to_masked > 0).all())
        else:
            assert bool((to_masked == 0).all())
        assert bool((weights[2, :, :, 2] == 0).all())  # the missing patch, in both modes
        torch.testing.assert_close(weights.sum(-1), torch.ones(8, 4, 8))


def test_kept_masked_tokens_change_what_visible_patches_see():
    values, noise = _series(), torch.rand(4, 2, 8)
    kept = _model("ts_masked").eval()(values, noise=noise)
    removed = _model("ts_masked", {"keep_masked_tokens": False}).eval()(values, noise=noise)
    assert torch.equal(kept.mask, removed.mask)
    torch.testing.assert_close(kept.target, removed.target)
    assert not torch.allclose(kept.prediction, removed.prediction)


# ----------------------------------------------------------------------------------------------
# Next-patch prediction
# ----------------------------------------------------------------------------------------------


def test_autoregressive_predictions_ignore_the_future_and_the_loss_is_next_patch():
    # Without instance normalisation: its statistics cover the whole window (as in GPHT and PatchTST),
    # so they are the one channel through which later values reach earlier predictions.
    model = _model("ts_autoregressive", scaling="none").eval()
    assert model.config.is_causal
    values = _series()
    out = model(values)
    future = values.clone()
    future[:, 40:] += 50.0  # patches 5..7
    changed = model(future)
    torch.testing.assert_close(changed.prediction[:, :, :5], out.prediction[:, :, :5])
    by_hand = ((out.prediction[:, :, :-1] - out.target[:, :, 1:]) ** 2).mean()
    torch.testing.assert_close(out.loss, by_hand)


def test_forecast_reverses_the_instance_normalisation():
    model = _model("ts_autoregressive").eval()
    values = _series()
    forecast = model.forecast(values, horizon=12)
    assert forecast.shape == (4, 12, 2)
    torch.testing.assert_close(
        model.forecast(values * 10 + 5, horizon=12), forecast * 10 + 5, rtol=1e-4, atol=1e-3
    )


@pytest.mark.parametrize("objective", ["ts_masked", "ts_autoregressive"])
def test_losses_fall_over_a_few_steps(objective):
    model = _model(objective).train()
    values, noise = _series(), torch.rand(4, 2, 8, generator=torch.Generator().manual_seed(0))
    kwargs = {"noise": noise} if objective == "ts_masked" else {}
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model(values, **kwargs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_pretraining_errors_name_the_field():
    with pytest.raises(ValueError, match="non-overlapping patches"):
        MMFMTimeSeriesForMaskedPatchModeling(mmfm.MMFMTimeSeriesConfig.from_preset("tiny", patch_stride=4))
    with pytest.raises(ValueError, match="non-overlapping patches"):
        MMFMTimeSeriesForNextPatchPrediction(
            mmfm.MMFMTimeSeriesConfig.from_preset("tiny", patch_stride=4, is_causal=True)
        )
    with pytest.raises(ValueError, match=r"MMFMTimeSeriesForNextPatchPrediction \(ts_autoregressive\) needs "
                                         r"config\.is_causal=True, got False"):  # fmt: skip
        MMFMTimeSeriesForNextPatchPrediction(mmfm.MMFMTimeSeriesConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match=r"MaskedPatchConfig\.mask_ratio must be strictly between 0 and 1"):
        _model("ts_masked", {"mask_ratio": 0.0})
    with pytest.raises(ValueError, match=r"MaskedPatchConfig\.keep_masked_tokens must be a bool"):
        _model("ts_masked", {"keep_masked_tokens": "yes"})
    with pytest.raises(ValueError, match=r"Unknown NextPatchConfig field\(s\) \['mask_ratio'\]"):
        _model("ts_autoregressive", {"mask_ratio": 0.4})
    with pytest.raises(ValueError, match=r"'ts_autoregressive' objective.*made for 'ts_masked'"):
        masked = _model("ts_masked")
        MMFMTimeSeriesForNextPatchPrediction(masked.config)
    model = _model("ts_masked")
    with pytest.raises(ValueError, match="noise"):
        model(_series(), noise=torch.rand(4, 8))
    sparse = torch.zeros(1, 64, 1)
    sparse[0, 0] = 1  # one observed value: one patch, nothing to mask while keeping one visible
    with pytest.raises(ValueError, match="too short to mask"):
        model(torch.randn(1, 64, 1), sparse)
    # Only the next-patch model forecasts; the masked model has no such method (nor takes its keywords).
    assert not hasattr(model, "forecast")
    with pytest.raises(TypeError, match="horizon"):
        model(_series(), horizon=4)
