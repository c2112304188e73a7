"""Masked patch reconstruction (PatchTST) and next-patch forecasting (GPHT-style) for time series."""

import pytest
import torch

import mmfm
from mmfm.models.modeling_mmfm_timeseries import MMFMTimeSeriesForPreTraining


def _model(objective: str, **overrides) -> MMFMTimeSeriesForPreTraining:
    torch.manual_seed(0)
    config = mmfm.MMFMTimeSeriesConfig.from_preset(
        "tiny", pretraining_objective=objective, is_causal=objective == "autoregressive", **overrides
    )
    return MMFMTimeSeriesForPreTraining(config)


def _series(batch: int = 4, channels: int = 2) -> torch.Tensor:
    steps = torch.arange(64, dtype=torch.float32)
    rows = [
        torch.stack([torch.sin(steps / (2 + b + c)) * (1 + c) + b - c for c in range(channels)], dim=-1)
        for b in range(batch)
    ]
    return torch.stack(rows)  # (B, 64, C)


def test_masked_loss_matches_a_loop_over_masked_observed_values():
    model = _model("masked").eval()
    values, observed = _series(), torch.ones(4, 64, 2)
    observed[0, 3:7, 1] = 0
    out = model(values, observed, noise=torch.rand(4, 2, 8))
    errors = []
    for b in range(4):
        for c in range(2):
            for p in range(8):
                if out.mask[b, c, p]:
                    for s in range(8):
                        if observed[b, p * 8 + s, c]:
                            errors.append((out.prediction[b, c, p, s] - out.target[b, c, p, s]) ** 2)
    torch.testing.assert_close(out.loss, torch.stack(errors).mean())
    assert out.mask.sum(dim=-1).tolist() == [[3, 3]] * 4  # round(8 * 0.6) = 5 kept, 3 masked


def test_masked_patches_do_not_leak_into_the_prediction():
    model = _model("masked").eval()
    values, noise = _series(), torch.rand(4, 2, 8)
    out = model(values, noise=noise)
    hidden = out.mask.repeat_interleave(8, dim=-1).transpose(1, 2)
    changed = model(values + 100.0 * hidden, noise=noise)
    torch.testing.assert_close(changed.prediction, out.prediction)


def test_autoregressive_predictions_ignore_the_future_and_the_loss_is_next_patch():
    # Without instance normalisation: its statistics cover the whole window (as in GPHT and PatchTST),
    # so they are the one channel through which later values reach earlier predictions.
    model = _model("autoregressive", scaling="none").eval()
    values = _series()
    out = model(values)
    future = values.clone()
    future[:, 40:] += 50.0  # patches 5..7
    changed = model(future)
    torch.testing.assert_close(changed.prediction[:, :, :5], out.prediction[:, :, :5])
    by_hand = ((out.prediction[:, :, :-1] - out.target[:, :, 1:]) ** 2).mean()
    torch.testing.assert_close(out.loss, by_hand)


def test_forecast_reverses_the_instance_normalisation():
    model = _model("autoregressive").eval()
    values = _series()
    forecast = model.forecast(values, horizon=12)
    assert forecast.shape == (4, 12, 2)
    torch.testing.assert_close(model.forecast(values * 10 + 5, horizon=12), forecast * 10 + 5, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("objective", ["masked", "autoregressive"])
def test_losses_fall_over_a_few_steps(objective):
    model = _model(objective).train()
    values, noise = _series(), torch.rand(4, 2, 8, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model(values, noise=noise).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


def test_pretraining_errors_name_the_field():
    with pytest.raises(ValueError, match="non-overlapping patches"):
        MMFMTimeSeriesForPreTraining(mmfm.MMFMTimeSeriesConfig.from_preset("tiny", patch_stride=4))
    with pytest.raises(ValueError, match="is_causal=True"):
        MMFMTimeSeriesForPreTraining(
            mmfm.MMFMTimeSeriesConfig.from_preset("tiny", pretraining_objective="autoregressive")
        )
    with pytest.raises(ValueError, match="mask_ratio"):
        mmfm.MMFMTimeSeriesConfig.from_preset("tiny", mask_ratio=0.0)
    model = _model("masked")
    with pytest.raises(ValueError, match="noise"):
        model(_series(), noise=torch.rand(4, 8))
    sparse = torch.zeros(1, 64, 1)
    sparse[0, 0] = 1  # one observed value: one patch, nothing to mask while keeping one visible
    with pytest.raises(ValueError, match="too short to mask"):
        model(torch.randn(1, 64, 1), sparse)
    with pytest.raises(ValueError, match="autoregressive"):
        model.forecast(_series(), horizon=4)
