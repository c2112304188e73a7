"""Image processor for the mmfm vision encoder: images -> `pixel_values` (B, C, H, W) float32.

It follows the transformers 5 image-processor design (`BaseImageProcessor` with class-level defaults, a
`valid_kwargs` TypedDict, `preprocess` -> `_prepare_image_like_inputs` -> `_preprocess`) so that it saves to
`preprocessor_config.json`, loads with `from_pretrained` and registers with `AutoImageProcessor`. The pixel
operations are done in torch on float32 (no uint8 round trip through PIL, so float inputs keep their
precision); bicubic resizing uses `antialias=True`, which follows PIL's filter when downsampling.

Registration (done in `mmfm/__init__.py`): transformers 5 keys image processors by backend, so use
`AutoImageProcessor.register(Config, image_processor_classes={"pil": MMFMImageProcessor,
"torchvision": MMFMImageProcessor})`; registering only one backend works too, but then loading logs
"Requested <backend> backend is not available. Falling back to ..." when the other one is the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassError
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import ImagesKwargs
from transformers.utils import logging

from .mmfm_processing_validation import (
    check_finite,
    check_int,
    check_return_tensors,
    describe,
    make_batch_feature,
    to_numpy,
)

logger = logging.get_logger(__name__)

# Channel counts an input image may have when `do_convert_rgb=True`: gray, RGB, RGBA.
CONVERTIBLE_CHANNELS = (1, 3, 4)
# PIL filter -> torch interpolation mode. Only the filters torch can reproduce are accepted.
RESAMPLE_TO_TORCH = {
    int(PILImageResampling.NEAREST): "nearest-exact",
    int(PILImageResampling.BILINEAR): "bilinear",
    int(PILImageResampling.BICUBIC): "bicubic",
}


def _pil_to_rgb_array(image: PIL.Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of a PIL image, transparency composited on white (as transformers does;
    written out here because `convert_to_rgb`'s signature changed within transformers 5)."""
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(PIL.Image.alpha_composite(background, rgba).convert("RGB"))
    return np.array(image.convert("RGB"))


class MMFMImageProcessorKwargs(ImagesKwargs, total=False):
    """`ImagesKwargs` plus the mmfm-specific options (also accepted by `__call__`).

    Attributes:
        patch_size (`int`): the vision encoder's patch size; input images must be at least this large and the
            output size must be a multiple of it.
        num_channels (`int`): channels of `pixel_values` when `do_convert_rgb=False` (inputs must have
            exactly this many).
    """

    patch_size: int | None
    num_channels: int | None


class MMFMImageProcessor(BaseImageProcessor):
    r"""Turns images into `pixel_values` for the mmfm vision encoder.

    Pipeline per image: validate -> convert to RGB -> resize to `size` (bicubic) -> rescale by 1/255 ->
    normalise with `image_mean`/`image_std`. Inputs may be PIL images, numpy arrays or torch tensors of
    shape (H, W), (H, W, C) or (C, H, W) (the channel axis is inferred as transformers does: an axis of
    size 1, 3 or 4; channels-first wins when both ends qualify; pass `input_data_format` to force it), a
    list of those, or a 4-D array/tensor (B, ...) of images.

    Args:
        do_resize: resize every image to `size`.
        size: output size `{"height": int, "width": int}` (an int means a square); both must be multiples
            of `patch_size`. Defaults to 224 x 224.
        resample: `PILImageResampling.BICUBIC` (default), `BILINEAR` or `NEAREST`.
        do_rescale: multiply pixel values by `rescale_factor` (1/255: uint8 [0, 255] -> [0, 1]).
        rescale_factor: the rescale factor.
        do_normalize: subtract `image_mean` and divide by `image_std`, per channel.
        image_mean: per-channel mean, ImageNet's by default.
        image_std: per-channel std, ImageNet's by default.
        do_convert_rgb: make every image 3-channel RGB: gray is repeated, RGBA is composited on white (as
            transformers does). When False, inputs must have exactly `num_channels` channels.
        patch_size: the encoder's patch size (16), used for validation only.
        num_channels: output channels when `do_convert_rgb=False` (3).

    Returns (from `__call__`):
        `BatchFeature` with `pixel_values`: float32 (B, C, H, W) for `return_tensors="pt"` (torch) or "np"
        (numpy); for the transformers default `return_tensors=None`, a list of B numpy arrays (C, H, W).
    """

    valid_kwargs = MMFMImageProcessorKwargs
    model_input_names = ["pixel_values"]
    # `save_pretrained` copies this file and its sibling imports into the folder and writes `auto_map`,
    # so `AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)` loads it without mmfm.
    _auto_class = "AutoImageProcessor"

    do_resize = True
    size = {"height": 224, "width": 224}
    resample = PILImageResampling.BICUBIC
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_convert_rgb = True
    do_center_crop = False
    do_pad = False
    patch_size = 16
    num_channels = 3

    def __init__(
        self,
        do_resize: bool = True,
        size: dict[str, int] | int | None = None,
        resample: PILImageResampling | int = PILImageResampling.BICUBIC,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: float | list[float] | None = None,
        image_std: float | list[float] | None = None,
        do_convert_rgb: bool = True,
        patch_size: int = 16,
        num_channels: int = 3,
        **kwargs: Any,
    ) -> None:
        options = dict(
            do_resize=do_resize,
            size=size,
            resample=resample,
            do_rescale=do_rescale,
            rescale_factor=rescale_factor,
            do_normalize=do_normalize,
            image_mean=image_mean,
            image_std=image_std,
            do_convert_rgb=do_convert_rgb,
            patch_size=patch_size,
            num_channels=num_channels,
        )
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        # transformers 5: `_set_attributes` fills every `valid_kwargs` key from the argument or the class
        # default and standardises `size` to a `SizeDict`; backends call it in `__init__`, so do we.
        self._set_attributes(**options, **kwargs)
        self._validate_preprocess_kwargs(**{name: getattr(self, name) for name in self._valid_kwargs_names})

    # ----------------------------------------------------------------------------------------------------
    # Options
    # ----------------------------------------------------------------------------------------------------

    def preprocess(self, images: Any, *args: Any, **kwargs: Any) -> BatchFeature:
        """Process an image or a batch of images; keyword arguments override the processor's settings.

        Args:
            images: one image or a batch (see the class docstring).
            return_tensors: "pt", "np" or None (default, transformers' convention: a list of arrays).
            input_data_format: "channels_first" or "channels_last" to skip channel-axis inference.
            **kwargs: any constructor option (`size`, `do_normalize`, ...) for this call only.

        Returns:
            `BatchFeature` with `pixel_values` (B, C, H, W) float32.
        """
        try:
            return super().preprocess(images, *args, **kwargs)
        except StrictDataclassError as err:
            # transformers validates kwarg types with huggingface_hub's strict dataclasses, whose error is
            # not a TypeError; re-raise as one so callers can catch the usual exception.
            raise TypeError(f"Invalid option for {type(self).__name__}: {err}") from err

    def _validate_preprocess_kwargs(
        self,
        do_resize: bool | None = None,
        size: SizeDict | None = None,
        resample: int | None = None,
        do_normalize: bool | None = None,
        image_mean: Any = None,
        image_std: Any = None,
        do_convert_rgb: bool | None = None,
        patch_size: int | None = None,
        num_channels: int | None = None,
        do_center_crop: bool | None = None,
        do_pad: bool | None = None,
        return_tensors: Any = None,
        **kwargs: Any,
    ) -> None:
        """Check the options of one call (or of the constructor) before any image is touched."""
        super()._validate_preprocess_kwargs(
            do_resize=do_resize, size=size, resample=resample, do_normalize=do_normalize,
            image_mean=image_mean, image_std=image_std, **kwargs,
        )  # fmt: skip
        check_return_tensors(return_tensors)
        patch_size = check_int("patch_size", patch_size, minimum=1)
        num_channels = check_int("num_channels", num_channels, minimum=1)
        for name, value in (("do_center_crop", do_center_crop), ("do_pad", do_pad)):
            if value:
                raise ValueError(
                    f"`{name}=True` is not supported by {type(self).__name__}: images are resized to `size` "
                    "directly. Set it to False."
                )
        if do_resize:
            if size is None or size.height is None or size.width is None:
                raise ValueError(
                    f"`size` must be {{'height': int, 'width': int}} (or an int for a square), got {size!r}."
                )
            for side in ("height", "width"):
                if size[side] % patch_size:
                    raise ValueError(
                        f"`size['{side}']` must be a multiple of `patch_size`={patch_size}, got "
                        f"{size[side]}. Use e.g. {max(1, round(size[side] / patch_size)) * patch_size}."
                    )
        if resample is not None and int(resample) not in RESAMPLE_TO_TORCH:
            raise ValueError(
                "`resample` must be one of PILImageResampling.BICUBIC, BILINEAR or NEAREST, got "
                f"{resample!r}."
            )
        if do_convert_rgb and num_channels != 3:
            raise ValueError(
                f"`do_convert_rgb=True` makes 3-channel RGB images but `num_channels`={num_channels}. Set "
                f"`do_convert_rgb=False` to feed {num_channels}-channel images as they are."
            )
        out_channels = 3 if do_convert_rgb else num_channels
        if do_normalize:
            for name, value in (("image_mean", image_mean), ("image_std", image_std)):
                length = len(value) if isinstance(value, list | tuple) else 1
                if length not in (1, out_channels):
                    raise ValueError(
                        f"`{name}` must have 1 or {out_channels} values (one per output channel), got "
                        f"{value!r}."
                    )
            if np.any(np.asarray(image_std, dtype=np.float64) == 0):
                raise ValueError(f"`image_std` must not contain 0, got {image_std!r}.")

    # ----------------------------------------------------------------------------------------------------
    # Per-image preparation: validation, channels-first float32, RGB conversion
    # ----------------------------------------------------------------------------------------------------

    def _prepare_images_structure(self, images: Any, expected_ndims: int = 3) -> list[Any]:
        """Flatten the input into a list of single images, refusing empty or unsupported inputs."""
        if isinstance(images, list | tuple):
            if len(images) == 0:
                raise ValueError("`images` is an empty list: expected at least one image.")
            if all(isinstance(image, list | tuple) for image in images):
                raise TypeError(
                    "`images` must be an image or a flat list of images, got a nested list "
                    f"({describe(images)}). Pass a list of PIL images, numpy arrays or torch tensors."
                )
            return list(images)
        if isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 4:
            if images.shape[0] == 0:
                raise ValueError(
                    f"`images` is an empty batch ({describe(images)}): expected at least one image."
                )
            return list(images)
        return [images]

    def _prepare_image_like_inputs(self, images: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Validate and convert every image to a float32 (C, H, W) array, naming `images[i]` on error."""
        images = self._prepare_images_structure(images)
        return [self._to_channels_first(image, f"images[{i}]", **kwargs) for i, image in enumerate(images)]

    def process_image(self, image: Any, **kwargs: Any) -> np.ndarray:
        """Validate and convert one image to a float32 (C, H, W) array (before resizing/normalising)."""
        options = {name: kwargs.get(name, getattr(self, name)) for name in ("do_convert_rgb", "patch_size")}
        options["num_channels"] = kwargs.get("num_channels", self.num_channels)
        return self._to_channels_first(
            image, "image", input_data_format=kwargs.get("input_data_format"), **options
        )

    def _to_channels_first(
        self,
        image: Any,
        field: str,
        do_convert_rgb: bool = True,
        patch_size: int = 16,
        num_channels: int = 3,
        input_data_format: str | ChannelDimension | None = None,
        do_rescale: bool = False,
        **kwargs: Any,
    ) -> np.ndarray:
        if isinstance(image, PIL.Image.Image):
            # PIL images are uint8/int32/float32 with known channels; RGB conversion follows transformers
            # (palette and alpha handled by PIL, alpha composited on white).
            array = _pil_to_rgb_array(image) if do_convert_rgb else np.asarray(image)
            array = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
            check_finite(array, field)
        else:
            if not isinstance(image, np.ndarray | torch.Tensor):
                raise TypeError(
                    f"`{field}` must be a PIL image, a numpy array or a torch tensor, got {describe(image)}."
                )
            array = to_numpy(image, field, kinds="iuf")
            if array.ndim not in (2, 3):
                raise ValueError(
                    f"`{field}` must have rank 2 (H, W) or 3 ((H, W, C) or (C, H, W)), got {describe(image)}."
                )
            check_finite(array, field)
            array = self._move_channels_first(array, field, num_channels, do_convert_rgb, input_data_format)
            if do_convert_rgb:
                array = _to_rgb(array, field)
        if do_rescale and array.dtype.kind == "f" and array.size and array.min() >= 0 and array.max() <= 1:
            logger.warning_once(
                "It looks like you are trying to rescale already rescaled images (float values in [0, 1]). "
                "If the input images have pixel values between 0 and 1, set `do_rescale=False`."
            )
        height, width = array.shape[-2:]
        if height < patch_size or width < patch_size:
            raise ValueError(
                f"`{field}` is smaller than one patch: got height x width = {height} x {width}, expected "
                f"both >= `patch_size`={patch_size}. Upsampling such an image would invent its content; drop "
                "it or pad it before processing."
            )
        channels = array.shape[0]
        expected = 3 if do_convert_rgb else num_channels
        if channels != expected:
            raise ValueError(
                f"`{field}` has {channels} channel(s), expected {expected} (`num_channels`={num_channels}, "
                f"`do_convert_rgb`={do_convert_rgb}). Set `do_convert_rgb=True` to convert gray/RGBA to RGB."
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    @staticmethod
    def _move_channels_first(
        array: np.ndarray,
        field: str,
        num_channels: int,
        do_convert_rgb: bool,
        input_data_format: str | ChannelDimension | None,
    ) -> np.ndarray:
        if array.ndim == 2:
            return array[None]
        allowed = CONVERTIBLE_CHANNELS if do_convert_rgb else (num_channels,)
        if input_data_format is not None:
            layout = ChannelDimension(input_data_format)
        elif array.shape[0] in allowed:
            # The transformers rule: channels-first wins when both ends look like a channel axis.
            layout = ChannelDimension.FIRST
        elif array.shape[-1] in allowed:
            layout = ChannelDimension.LAST
        else:
            raise ValueError(
                f"`{field}` has no channel axis: got shape {tuple(array.shape)}, expected a first or last "
                f"axis of size {' or '.join(map(str, allowed))} (gray, RGB, RGBA when `do_convert_rgb=True`, "
                f"else `num_channels`={num_channels})."
            )
        return array if layout == ChannelDimension.FIRST else np.moveaxis(array, -1, 0)

    # ----------------------------------------------------------------------------------------------------
    # Batch operations
    # ----------------------------------------------------------------------------------------------------

    def resize(
        self, image: torch.Tensor, size: SizeDict, resample: int | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Resize a float (C, H, W) tensor to `(size.height, size.width)` with antialiasing."""
        mode = RESAMPLE_TO_TORCH[int(resample if resample is not None else self.resample)]
        antialias = mode in ("bilinear", "bicubic")
        extra = {"align_corners": False, "antialias": antialias} if antialias else {}
        return F.interpolate(image[None], size=(size.height, size.width), mode=mode, **extra)[0]

    def _preprocess(
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: SizeDict,
        resample: int,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | tuple[float, ...],
        image_std: float | tuple[float, ...],
        patch_size: int,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Resize, rescale and normalise prepared (C, H, W) float32 images, then batch them."""
        processed = []
        for i, array in enumerate(images):
            image = torch.from_numpy(array)
            if do_resize:
                image = self.resize(image, size=size, resample=resample)
            elif image.shape[-2] % patch_size or image.shape[-1] % patch_size:
                raise ValueError(
                    f"`images[{i}]` is {image.shape[-2]} x {image.shape[-1]} and `do_resize=False`: the "
                    f"output size must be a multiple of `patch_size`={patch_size}. Set `do_resize=True` or "
                    "crop the image."
                )
            if do_rescale:
                image = image * rescale_factor
            if do_normalize:
                mean = torch.as_tensor(image_mean, dtype=torch.float32).reshape(-1, 1, 1)
                std = torch.as_tensor(image_std, dtype=torch.float32).reshape(-1, 1, 1)
                image = (image - mean) / std
            processed.append(image.numpy())
        shapes = {array.shape for array in processed}
        if len(shapes) > 1:
            raise ValueError(
                f"`images` have different sizes {sorted(shapes)} and `do_resize=False`, so they cannot be "
                "batched. Set `do_resize=True` or process them one at a time."
            )
        return make_batch_feature({"pixel_values": np.stack(processed)}, return_tensors)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable settings written to `preprocessor_config.json`."""
        output = super().to_dict()
        output["resample"] = int(output["resample"])
        for key in ("image_mean", "image_std"):
            if isinstance(output.get(key), tuple):
                output[key] = list(output[key])
        return output


def _to_rgb(array: np.ndarray, field: str) -> np.ndarray:
    """(C, H, W), C in 1/3/4 -> (3, H, W): gray repeated, alpha composited on white (as transformers does)."""
    channels = array.shape[0]
    if channels == 1:
        return np.repeat(array, 3, axis=0)
    if channels == 3:
        return array
    if np.issubdtype(array.dtype, np.integer):
        white = 255.0
    else:
        white = 1.0
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError(
                f"`{field}` is a float RGBA image with values in [{array.min()}, {array.max()}]: compositing "
                "the alpha channel needs float values in [0, 1]. Divide by 255 and set `do_rescale=False`, "
                "or drop the alpha channel yourself."
            )
    alpha = array[3:4].astype(np.float32) / white
    return alpha * array[:3].astype(np.float32) + (1.0 - alpha) * white


__all__ = ["MMFMImageProcessor"]
