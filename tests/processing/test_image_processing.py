"""MMFMImageProcessor: output contract, equivalences, save/load, Auto registration and input validation."""

import json

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoImageProcessor, PreTrainedConfig
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

from mmfm.processing.image_processing_mmfm import MMFMImageProcessor

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="module")
def camera():
    return skimage_data.camera()  # (512, 512) uint8 grayscale


def test_output_contract(astronaut, camera):
    processor = MMFMImageProcessor()
    images = [astronaut, camera, PIL.Image.fromarray(astronaut), torch.from_numpy(astronaut).permute(2, 0, 1)]
    pixel_values = processor(images, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (4, 3, 224, 224) and pixel_values.dtype == torch.float32
    np_values = processor(images, return_tensors="np")["pixel_values"]
    assert isinstance(np_values, np.ndarray) and np_values.dtype == np.float32
    np.testing.assert_array_equal(np_values, pixel_values.numpy())
    # transformers' default return_tensors=None: a list with one (C, H, W) array per image.
    listed = processor(images)["pixel_values"]
    assert isinstance(listed, list) and len(listed) == 4 and listed[0].shape == (3, 224, 224)
    # numpy HWC, PIL and torch CHW inputs of the same image agree exactly.
    torch.testing.assert_close(pixel_values[0], pixel_values[2], rtol=0, atol=0)
    torch.testing.assert_close(pixel_values[0], pixel_values[3], rtol=0, atol=0)
    # Gray is repeated over the three channels before per-channel normalisation.
    gray = (
        pixel_values[1] * torch.tensor(processor.image_std)[:, None, None]
        + torch.tensor(processor.image_mean)[:, None, None]
    )
    torch.testing.assert_close(gray[0], gray[2], rtol=0, atol=1e-5)


def test_batch_equals_single_images(astronaut, camera):
    processor = MMFMImageProcessor(size={"height": 64, "width": 96})
    batch = processor([astronaut, camera], return_tensors="np")["pixel_values"]
    assert batch.shape == (2, 3, 64, 96)
    for i, image in enumerate([astronaut, camera]):
        np.testing.assert_array_equal(batch[i], processor(image, return_tensors="np")["pixel_values"][0])
    stacked = processor(np.stack([astronaut, astronaut]), return_tensors="np")["pixel_values"]  # (B, H, W, C)
    np.testing.assert_array_equal(stacked[1], batch[0])


def test_rescale_and_normalize_values():
    processor = MMFMImageProcessor(size=32, patch_size=16)
    image = np.full((40, 48, 3), 200, dtype=np.uint8)
    out = processor(image, return_tensors="np")["pixel_values"][0]
    expected = (200 / 255 - np.array(processor.image_mean)) / np.array(processor.image_std)
    np.testing.assert_allclose(out[:, 5, 7], expected, rtol=1e-5)


def test_resize_matches_pil_bicubic(astronaut):
    processor = MMFMImageProcessor(do_normalize=False)
    ours = processor(astronaut, return_tensors="np")["pixel_values"][0]
    reference = np.asarray(PIL.Image.fromarray(astronaut).resize((224, 224), PIL.Image.BICUBIC)) / 255.0
    difference = np.abs(ours - reference.transpose(2, 0, 1))
    # PIL rounds to uint8 and clamps overshoot; we keep float32, hence the small residual.
    assert difference.mean() < 3e-3


def test_digits_with_small_patches():
    digits = pytest.importorskip("sklearn.datasets").load_digits().images[:5]  # (5, 8, 8) float 0..16
    processor = MMFMImageProcessor(
        size=16, patch_size=4, rescale_factor=1 / 16, image_mean=0.5, image_std=0.5
    )
    out = processor(list(digits), return_tensors="pt")["pixel_values"]
    assert out.shape == (5, 3, 16, 16)
    # [0, 16] -> [-1, 1], plus the overshoot of bicubic upsampling (not clipped).
    assert -1.5 < out.min() < -0.9 and 0.9 < out.max() < 1.5


def test_channel_conversion():
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, half transparent -> pink on white
    rgba[..., 3] = 128
    out = MMFMImageProcessor(size=32, do_normalize=False)(rgba, return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 127 / 255, 127 / 255], atol=2e-3)
    gray = np.random.default_rng(0).random((1, 20, 20), dtype=np.float32)
    single = MMFMImageProcessor(
        size=16, do_convert_rgb=False, num_channels=1, do_rescale=False, image_mean=[0.5], image_std=[0.5]
    )
    assert single(gray, return_tensors="pt")["pixel_values"].shape == (1, 1, 16, 16)
    ambiguous = np.ones((3, 20, 3))  # channels-first would win; force channels-last
    forced = MMFMImageProcessor(size=16, patch_size=2)(
        ambiguous, input_data_format="channels_last", do_rescale=False
    )
    assert forced["pixel_values"][0].shape == (3, 16, 16)


def test_save_load_round_trip(tmp_path, astronaut):
    processor = MMFMImageProcessor(
        size={"height": 96, "width": 64},
        patch_size=32,
        image_mean=[0.5, 0.4, 0.3],
        image_std=[0.2, 0.3, 0.4],
        resample=PIL.Image.Resampling.BILINEAR,
    )
    json.dumps(processor.to_dict())
    processor.save_pretrained(tmp_path)
    loaded = MMFMImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    for key in (
        "size",
        "patch_size",
        "image_mean",
        "image_std",
        "resample",
        "do_convert_rgb",
        "num_channels",
    ):
        assert getattr(loaded, key) == getattr(processor, key), key
    np.testing.assert_array_equal(
        loaded(astronaut, return_tensors="np")["pixel_values"],
        processor(astronaut, return_tensors="np")["pixel_values"],
    )


class _DummyVisionConfig(PreTrainedConfig):
    model_type = "mmfm_test_dummy_vision"


def test_auto_image_processor_registration(tmp_path):
    # transformers 5 keys image processors by backend; `image_processor_class=` (v4) no longer exists.
    AutoImageProcessor.register(
        _DummyVisionConfig,
        image_processor_classes={"pil": MMFMImageProcessor, "torchvision": MMFMImageProcessor},
        exist_ok=True,
    )
    try:
        MMFMImageProcessor(patch_size=8, size=64).save_pretrained(tmp_path)
        loaded = AutoImageProcessor.from_pretrained(tmp_path)
        assert type(loaded) is MMFMImageProcessor and loaded.patch_size == 8
    finally:
        IMAGE_PROCESSOR_MAPPING._extra_content.pop(_DummyVisionConfig, None)


def _nan_image():
    image = np.zeros((32, 32, 3), dtype=np.float32)
    image[3, 4, 1] = np.nan
    return image


@pytest.mark.parametrize(
    "images, kwargs, error, match",
    [
        (np.zeros(32), {}, ValueError, r"images\[0\].*rank"),
        (np.zeros((1, 1, 32, 32, 3)), {}, ValueError, r"images\[0\].*rank"),
        (np.zeros((32, 32, 5)), {}, ValueError, r"images\[0\].*channel axis.*1 or 3 or 4"),
        (
            np.zeros((32, 32, 3)),
            {"do_convert_rgb": False, "num_channels": 1, "image_mean": 0.5, "image_std": 0.5},
            ValueError,
            r"images\[0\].*channel axis.*`num_channels`=1",
        ),
        (
            np.zeros((32, 32)),
            {"do_convert_rgb": False},
            ValueError,
            r"images\[0\]. has 1 channel.*expected 3",
        ),
        (_nan_image(), {}, ValueError, r"images\[0\].*finite.*NaN"),
        (np.full((32, 32, 3), np.inf), {}, ValueError, r"images\[0\].*finite"),
        (
            [np.zeros((32, 32, 3)), np.zeros((10, 40, 3))],
            {},
            ValueError,
            r"images\[1\].*smaller than one patch.*10 x 40",
        ),
        (
            np.zeros((32, 32, 3)),
            {"size": {"height": 200, "width": 224}},
            ValueError,
            r"size\['height'\].*multiple of `patch_size`=16.*200",
        ),
        ([], {}, ValueError, r"`images` is an empty list"),
        ("image.png", {}, TypeError, r"images\[0\].*PIL image, a numpy array or a torch tensor"),
        (np.zeros((32, 32, 3), dtype=bool), {}, TypeError, r"images\[0\].*int/unsigned int/float"),
        (
            [np.zeros((32, 32, 3)), np.zeros((48, 32, 3))],
            {"do_resize": False},
            ValueError,
            r"different sizes",
        ),
        (np.zeros((40, 40, 3)), {"do_resize": False}, ValueError, r"images\[0\].*multiple of `patch_size`"),
        (np.zeros((32, 32, 3)), {"do_center_crop": True}, ValueError, r"do_center_crop"),
        (np.zeros((32, 32, 3)), {"return_tensors": "tf"}, ValueError, r"return_tensors"),
        (np.zeros((32, 32, 3)), {"do_resize": "yes"}, TypeError, r"do_resize"),
    ],
)
def test_invalid_inputs(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        MMFMImageProcessor()(images, **kwargs)


def test_invalid_constructor_options():
    with pytest.raises(ValueError, match=r"size\['width'\].*multiple of `patch_size`=16, got 100"):
        MMFMImageProcessor(size={"height": 96, "width": 100})
    with pytest.raises(ValueError, match=r"patch_size.*>= 1"):
        MMFMImageProcessor(patch_size=0)
    with pytest.raises(ValueError, match=r"image_mean.*1 or 3 values"):
        MMFMImageProcessor(image_mean=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"do_convert_rgb=True.*`num_channels`=1.*do_convert_rgb=False"):
        MMFMImageProcessor(num_channels=1)
    with pytest.raises(ValueError, match=r"resample"):
        MMFMImageProcessor(resample=PIL.Image.Resampling.LANCZOS)
