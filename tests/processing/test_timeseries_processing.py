"""MMFMTimeSeriesProcessor: contract, padding/truncation, missing values, scaling, save/load, validation."""

import json

import numpy as np
import pytest
import torch

from mmfm.processing.timeseries_processing_mmfm import MMFMTimeSeriesProcessor


@pytest.fixture(scope="module")
def gunpoint():
    """Four GunPoint series as (L=150, C=1) arrays; a synthetic stand-in if sktime is missing."""
    try:
        from sktime.datasets import load_gunpoint

        X, _ = load_gunpoint(return_type="numpy3D")  # (200, 1, 150)
        return [x.T for x in X[:4]]
    except ImportError:
        t = np.linspace(0, 1, 150)
        return [np.sin(2 * np.pi * (k + 1) * t)[:, None] for k in range(4)]


def test_output_contract(gunpoint):
    processor = MMFMTimeSeriesProcessor(context_length=160)
    out = processor(gunpoint, return_tensors="pt")
    assert out["past_values"].shape == (4, 160, 1) and out["past_values"].dtype == torch.float32
    assert out["past_observed_mask"].shape == (4, 160, 1) and out["past_observed_mask"].dtype == torch.int64
    assert set(out) == {"past_values", "past_observed_mask"}
    # Left padding: the 10 oldest steps are padding, the series ends at the last step.
    assert not out["past_observed_mask"][:, :10].any() and out["past_observed_mask"][:, 10:].all()
    assert torch.all(out["past_values"][:, :10] == 0)
    np.testing.assert_allclose(out["past_values"][2, 10:].numpy(), gunpoint[2].astype(np.float32))
    listed = processor(gunpoint)  # return_tensors=None: per-series arrays
    assert isinstance(listed["past_values"], list) and listed["past_values"][0].shape == (160, 1)


def test_layouts_agree(gunpoint):
    processor = MMFMTimeSeriesProcessor(context_length=150)
    from_list = processor(gunpoint, return_tensors="np")
    from_3d = processor(np.stack(gunpoint), return_tensors="np")  # (B, L, C)
    from_1d = processor([g[:, 0] for g in gunpoint], return_tensors="np")  # (L,) univariate
    from_torch = processor([torch.from_numpy(g) for g in gunpoint], return_tensors="np")
    for other in (from_3d, from_1d, from_torch):
        for key in from_list:
            np.testing.assert_array_equal(other[key], from_list[key])


def test_padding_semantics():
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(n, 3)) for n in (5, 8, 2)]
    for side in ("left", "right"):
        processor = MMFMTimeSeriesProcessor(context_length=8, padding_side=side, scaling="standard")
        batch = processor(series, return_tensors="np")
        for i, s in enumerate(series):
            alone = processor(s, return_tensors="np")
            for key in batch:
                np.testing.assert_array_equal(batch[key][i], alone[key][0])
            real = slice(8 - len(s), 8) if side == "left" else slice(0, len(s))
            assert batch["past_observed_mask"][i, real].all() and batch["past_observed_mask"][
                i
            ].sum() == 3 * len(s)


def test_truncation():
    series = np.arange(10.0)
    with pytest.raises(ValueError, match=r"series.*10 time steps.*context_length`=4.*truncation=True"):
        MMFMTimeSeriesProcessor(context_length=4)(series)
    recent = MMFMTimeSeriesProcessor(context_length=4, truncation=True)(series, return_tensors="np")
    np.testing.assert_array_equal(recent["past_values"][0, :, 0], [6, 7, 8, 9])
    first = MMFMTimeSeriesProcessor(context_length=4, truncation_side="right")(
        series, truncation=True, return_tensors="np"
    )
    np.testing.assert_array_equal(first["past_values"][0, :, 0], [0, 1, 2, 3])


def test_missing_values_and_observed_mask():
    series = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, np.nan], [4.0, 40.0]])
    out = MMFMTimeSeriesProcessor(context_length=4)(series, return_tensors="np")
    np.testing.assert_array_equal(out["past_observed_mask"][0], [[1, 1], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(out["past_values"][0], [[1, 10], [0, 20], [3, 0], [4, 40]])
    mask = np.ones((4, 2), dtype=bool)
    mask[0, 1] = False
    masked = MMFMTimeSeriesProcessor(context_length=4)(series, observed_mask=mask, return_tensors="np")
    assert masked["past_observed_mask"][0, 0, 1] == 0 and masked["past_values"][0, 0, 1] == 0


@pytest.mark.parametrize("scaling", ["standard", "mean"])
def test_scaling_is_reversible(scaling):
    series = [np.array([[1.0, 100.0], [np.nan, 300.0], [5.0, 200.0]]), np.array([[2.0, 0.0], [2.0, 0.0]])]
    out = MMFMTimeSeriesProcessor(context_length=4, scaling=scaling)(series, return_tensors="pt")
    assert (
        out["loc"].shape == (2, 1, 2)
        and out["scale"].shape == (2, 1, 2)
        and out["scale"].dtype == torch.float32
    )
    restored = out["past_values"] * out["scale"] + out["loc"]
    observed = out["past_observed_mask"].bool()
    torch.testing.assert_close(
        restored[0, 1:][observed[0, 1:]], torch.tensor([1.0, 100.0, 300.0, 5.0, 200.0])
    )
    torch.testing.assert_close(restored[1, 2:], torch.tensor([[2.0, 0.0], [2.0, 0.0]]))  # constant, all-zero
    observed_values = out["past_values"][0][observed[0]].reshape(-1)
    assert torch.all(out["past_values"][~observed] == 0) and torch.isfinite(observed_values).all()
    if scaling == "standard":
        torch.testing.assert_close(out["loc"][0, 0], torch.tensor([3.0, 200.0]))
        torch.testing.assert_close(out["scale"][0, 0], torch.tensor([2.0, float(np.std([100, 300, 200]))]))
    else:
        torch.testing.assert_close(out["loc"], torch.zeros(2, 1, 2))
        torch.testing.assert_close(out["scale"][0, 0], torch.tensor([3.0, 200.0]))


def test_save_load_round_trip(gunpoint):
    import tempfile

    processor = MMFMTimeSeriesProcessor(
        context_length=100,
        num_input_channels=1,
        padding_side="right",
        truncation=True,
        truncation_side="right",
        missing_values="error",
        scaling="mean",
        minimum_scale=1e-3,
    )
    json.dumps(processor.to_dict())
    with tempfile.TemporaryDirectory() as folder:
        processor.save_pretrained(folder)
        loaded = MMFMTimeSeriesProcessor.from_pretrained(folder)
    assert loaded.to_dict() == processor.to_dict()
    expected, actual = processor(gunpoint, return_tensors="np"), loaded(gunpoint, return_tensors="np")
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


@pytest.mark.parametrize(
    "series, options, kwargs, match",
    [
        ([np.zeros((2, 3, 4))], {}, {}, r"series\[0\].*rank 1 \(L,\) or 2 \(L, C\).*\(2, 3, 4\)"),
        (np.float64(3.0), {}, {}, r"series.*rank 1"),
        ([np.zeros((5, 2)), np.zeros((5, 3))], {}, {}, r"series\[1\].*3 channel.*the first series has 2"),
        (np.zeros((5, 2)), {"num_input_channels": 3}, {}, r"series.*2 channel.*`num_input_channels` has 3"),
        (np.zeros((0, 2)), {}, {}, r"series.*empty series \(L=0\)"),
        (
            [np.ones((4, 2)), np.array([[1.0, np.nan], [2.0, np.nan]])],
            {},
            {},
            r"series\[1\].*no observed value in channel 1",
        ),
        (np.array([1.0, np.inf]), {}, {}, r"series.*finite.*Inf.*index \(1, 0\)"),
        (
            np.array([1.0, np.nan]),
            {"missing_values": "error"},
            {},
            r"series.*finite.*NaN.*missing_values='error'",
        ),
        (np.ones(600), {}, {}, r"series.*600 time steps.*context_length`=512"),
        ([np.ones(3), 2.0], {}, {}, r"series.*mixes ranks"),
        ([], {}, {}, r"series.*empty list"),
        (np.ones((4, 2)), {}, {"observed_mask": np.ones((4, 3))}, r"observed_mask.*shape.*\(4, 2\)"),
        (np.ones((4, 2)), {}, {"observed_mask": np.full((4, 2), 2)}, r"observed_mask.*0/1"),
        ([np.ones(4)] * 2, {}, {"observed_mask": [np.ones(4)]}, r"observed_mask.*1 series.*2"),
        (np.ones(4), {}, {"return_tensors": "tf"}, r"return_tensors"),
    ],
)
def test_invalid_inputs(series, options, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MMFMTimeSeriesProcessor(**options)(series, **kwargs)


def test_invalid_types_and_options():
    with pytest.raises(TypeError, match=r"series.*numpy array"):
        MMFMTimeSeriesProcessor()("1,2,3")
    with pytest.raises(TypeError, match=r"series.*int/unsigned int/float.*bool"):
        MMFMTimeSeriesProcessor()(np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match=r"scaling.*'none', 'standard', 'mean'.*'minmax'"):
        MMFMTimeSeriesProcessor(scaling="minmax")
    with pytest.raises(ValueError, match=r"padding_side.*'middle'"):
        MMFMTimeSeriesProcessor(padding_side="middle")
    with pytest.raises(ValueError, match=r"context_length.*>= 1"):
        MMFMTimeSeriesProcessor(context_length=0)
