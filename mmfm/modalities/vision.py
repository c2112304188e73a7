"""The vision modality: images (PIL, arrays, or file paths in a column or a folder) -> `pixel_values`;
patches count throughput."""

from __future__ import annotations

import io
import os
from typing import Any

import datasets
import PIL.Image

from ..models import MMFMVisionModel
from ..processing import MMFMImageProcessor
from .spec import ModalitySpec

# What `datasets`' imagefolder builder reads (PIL's common formats).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def build_processor(config, tokenizer=None) -> MMFMImageProcessor:
    return MMFMImageProcessor(
        size={"height": config.image_size, "width": config.image_size},
        patch_size=config.patch_size,
        num_channels=config.num_channels,
        do_convert_rgb=config.num_channels == 3,
    )


def open_image(item: Any) -> Any:
    """A PIL image from a file path or an undecoded `datasets.Image` cell (`{"bytes", "path"}`); other
    items (PIL images, arrays) are returned as they are. `ValueError` naming the file when it cannot be
    read as an image (the data pipeline then skips and counts the row)."""
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item.get("path")
    elif isinstance(item, (str, os.PathLike)):
        source = item
    else:
        return item
    if source is None:
        raise ValueError("an image cell holds neither bytes nor a path")
    try:
        with PIL.Image.open(source) as image:
            image.load()
            return image.copy()  # closing the file releases the opened image's data
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, struct.error, ...) on bad bytes
        name = item.get("path") if isinstance(item, dict) else item
        what = repr(name) if name else f"of {len(item['bytes'])} bytes"
        raise ValueError(f"cannot read image {what}: {type(err).__name__}: {err}") from err


def image_items(rows: dict[str, list], text_column: str) -> tuple[list, dict]:
    return [open_image(item) for item in rows["image"]], {}


def count_patches(inputs, config) -> int:
    batch, _, height, width = inputs["pixel_values"].shape
    return int(batch * (height // config.patch_size) * (width // config.patch_size))


SPEC = ModalitySpec(
    name="vision",
    encoder_class=MMFMVisionModel,
    processor_class=MMFMImageProcessor,
    build_processor=build_processor,
    required_columns=("image",),
    row_adapter=image_items,
    unit="patches",
    count_units=count_patches,
    default_objective="mae",
    file_columns={"image": datasets.Image},
    folder_builder="imagefolder",
    folder_extensions=IMAGE_EXTENSIONS,
)
