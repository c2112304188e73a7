"""Vision subsets of the demo corpus. Images are `datasets.Image()` features holding PIL images.

Subsets and columns:
    digits: `image` (8x8, mode "L", 0..255), `label` ClassLabel(["0", ..., "9"]), `caption`
        ("a handwritten digit seven"); scikit-learn `load_digits`, seeded stratified 80/20 split.
    shapes: `image` (64x64 RGB), `label` ClassLabel(["circle", "square", "triangle"]) of the first shape
        named in the caption, `caption` ("a large red circle to the left of a small blue square");
        1-2 shapes drawn with Pillow, seeded; 80/20 split.
    emoji (train only): `image` (64x64 RGB), `caption` (CLDR short name, e.g. "giraffe face"); Noto Color
        Emoji rendered with Pillow, base forms only (no skin-tone variants), fully qualified, emoji
        version <= 15.
    photos (train only): `image` (RGB or "L", longest side at most `PHOTO_MAX_SIDE`), `caption` (the
        scikit-image loader name, e.g. "hubble deep field"); the photos bundled with scikit-image.
"""

from __future__ import annotations

import logging

import numpy as np
from datasets import ClassLabel, Features, Image, Value
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
    labelled_splits,
    make_splits,
    require_file,
    require_module,
    subset_rng,
)

logger = logging.getLogger(__name__)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
IMAGE_SIZE = 64

# ---------------------------------------------------------------------------------------------- digits


def build_digits(max_samples: int | None, seed: int) -> BuildResult:
    """scikit-learn's 1,797 8x8 digits, rescaled from 0..16 to 0..255 grey levels."""
    sk_datasets = require_module("sklearn.datasets", "pip install scikit-learn")
    digits = sk_datasets.load_digits()
    rng = subset_rng(seed, "vision/digits")
    keep = cap_indices(digits.target.tolist(), max_samples, rng)
    pixels = np.clip(np.round(digits.images[keep] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = [int(t) for t in digits.target[keep]]
    columns = {
        "image": [PILImage.fromarray(p, mode="L") for p in pixels],
        "label": labels,
        "caption": [f"a handwritten digit {DIGIT_WORDS[t]}" for t in labels],
    }
    features = Features(
        {"image": Image(), "label": ClassLabel(names=[str(d) for d in range(10)]), "caption": Value("string")}
    )
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits, 8x8); seeded "
        "stratified 80/20 split",
        license="scikit-learn BSD-3 package; UCI data",
    )


# ---------------------------------------------------------------------------------------------- shapes

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 20),
    "orange": (245, 130, 20),
    "purple": (140, 50, 180),
}
SIZES = {"small": (12, 18), "large": (24, 30)}  # side / diameter range in pixels
NUM_SHAPES = 2000


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, center: tuple[float, float], size: float, rgb) -> None:
    x, y, h = center[0], center[1], size / 2
    if shape == "circle":
        draw.ellipse([x - h, y - h, x + h, y + h], fill=rgb)
    elif shape == "square":
        draw.rectangle([x - h, y - h, x + h, y + h], fill=rgb)
    else:
        draw.polygon([(x, y - h), (x - h, y + h), (x + h, y + h)], fill=rgb)


def _sample_shape(rng: np.random.Generator) -> tuple[str, str, str, float]:
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    size_name = list(SIZES)[rng.integers(len(SIZES))]
    low, high = SIZES[size_name]
    return shape, color, size_name, float(rng.uniform(low, high))


def render_shapes(rng: np.random.Generator) -> tuple[PILImage.Image, int, str]:
    """One 64x64 RGB image of 1-2 shapes on white, its label (first shape) and a compositional caption.

    With two shapes the canvas is cut into two halves (left/right or top/bottom) and one shape goes in
    each, so the spatial relation in the caption is never ambiguous and the shapes never overlap.
    """
    image = PILImage.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    draw = ImageDraw.Draw(image)
    first = _sample_shape(rng)
    if rng.random() < 0.5:
        shape, color, size_name, size = first
        margin = size / 2 + 1
        center = tuple(rng.uniform(margin, IMAGE_SIZE - margin, size=2))
        _draw_shape(draw, shape, center, size, COLORS[color])
        return image, SHAPES.index(shape), f"a {size_name} {color} {shape}"
    second = _sample_shape(rng)
    horizontal = rng.random() < 0.5
    half = IMAGE_SIZE / 2
    centers = []
    for k, (_, _, _, size) in enumerate((first, second)):
        margin = size / 2 + 1
        along = rng.uniform(k * half + margin, (k + 1) * half - margin)
        across = rng.uniform(margin, IMAGE_SIZE - margin)
        centers.append((along, across) if horizontal else (across, along))
    # Randomise which shape is named first so the caption's relation is not always "left of"/"above".
    order = (0, 1) if rng.random() < 0.5 else (1, 0)
    specs = [first, second]
    for spec, center in zip(specs, centers):
        _draw_shape(draw, spec[0], center, spec[3], COLORS[spec[1]])
    a, b = specs[order[0]], specs[order[1]]
    if horizontal:
        relation = "to the left of" if order[0] == 0 else "to the right of"
    else:
        relation = "above" if order[0] == 0 else "below"
    caption = f"a {a[2]} {a[1]} {a[0]} {relation} a {b[2]} {b[1]} {b[0]}"
    return image, SHAPES.index(a[0]), caption


def build_shapes(max_samples: int | None, seed: int) -> BuildResult:
    """`NUM_SHAPES` generated shape images with compositional captions, 80/20 stratified split."""
    rng = subset_rng(seed, "vision/shapes")
    n = NUM_SHAPES if max_samples is None else min(NUM_SHAPES, max_samples)
    rows = [render_shapes(rng) for _ in range(n)]
    columns = {"image": [r[0] for r in rows], "label": [r[1] for r in rows], "caption": [r[2] for r in rows]}
    features = Features(
        {"image": Image(), "label": ClassLabel(names=list(SHAPES)), "caption": Value("string")}
    )
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source=f"{n} images of 1-2 coloured shapes drawn with Pillow (seeded); seeded stratified 80/20 split",
        license="generated",
    )


# ----------------------------------------------------------------------------------------------- emoji

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJI_FONT_SIZE = 109  # NotoColorEmoji is a CBDT bitmap font: Pillow renders it at this size only
EMOJI_MAX_VERSION = 15.0  # the Debian font's emoji level; newer emoji render as missing-glyph boxes
SKIN_TONES = range(0x1F3FB, 0x1F400)


def emoji_pairs() -> list[tuple[str, str]]:
    """(emoji, CLDR name) for fully-qualified base emoji (no skin-tone modifiers) of version <= 15."""
    emoji = require_module("emoji", "pip install emoji")
    pairs = []
    for char, data in emoji.EMOJI_DATA.items():
        if data.get("status") != emoji.STATUS["fully_qualified"] or data["E"] > EMOJI_MAX_VERSION:
            continue
        if any(ord(c) in SKIN_TONES for c in char):
            continue
        pairs.append((char, data["en"].strip(":").replace("_", " ")))
    return pairs


def render_emoji(char: str, font: ImageFont.FreeTypeFont) -> PILImage.Image | None:
    """Render one emoji, crop to its ink, pad to a white square and resize to 64x64 RGB.

    Returns None for a blank render or one wider than a single glyph (a sequence the font lacks is
    drawn as several glyphs side by side).
    """
    canvas = PILImage.new("RGBA", (4 * EMOJI_FONT_SIZE, 2 * EMOJI_FONT_SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), char, font=font, embedded_color=True)
    bbox = canvas.getbbox()
    if bbox is None or bbox[2] - bbox[0] > 1.4 * EMOJI_FONT_SIZE:
        return None
    glyph = canvas.crop(bbox)
    side = max(glyph.size)
    square = PILImage.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), PILImage.Resampling.LANCZOS)


def build_emoji(max_samples: int | None, seed: int) -> BuildResult:
    """Image-caption pairs from Noto Color Emoji (~1,870 base emoji)."""
    require_file(EMOJI_FONT, "apt-get install fonts-noto-color-emoji")
    from PIL import features as pil_features

    if not pil_features.check("raqm"):
        # Without libraqm, multi-codepoint emoji (ZWJ sequences, flags) render as separate glyphs.
        raise SourceUnavailable(
            "Pillow was built without libraqm, needed to shape emoji sequences: "
            "install a Pillow wheel from PyPI (it bundles raqm)."
        )
    font = ImageFont.truetype(EMOJI_FONT, EMOJI_FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)
    pairs = emoji_pairs()
    rng = subset_rng(seed, "vision/emoji")
    if max_samples is not None and max_samples < len(pairs):
        pairs = [pairs[i] for i in np.sort(rng.choice(len(pairs), size=max_samples, replace=False))]
    images, captions, dropped = [], [], []
    for char, name in pairs:
        image = render_emoji(char, font)
        if image is None:
            dropped.append(name)
            continue
        images.append(image)
        captions.append(name)
    notes = [f"dropped {len(dropped)} blank or multi-glyph renders: {dropped[:10]}"] if dropped else []
    features = Features({"image": Image(), "caption": Value("string")})
    return BuildResult(
        dataset=make_splits({"image": images, "caption": captions}, features),
        source="Noto Color Emoji (Debian fonts-noto-color-emoji) rendered with Pillow; CLDR names from the "
        "`emoji` package; base forms, fully qualified, emoji version <= 15",
        license="Noto Color Emoji: Apache-2.0 / OFL-1.1 (Debian copyright); emoji names: `emoji` "
        "package (BSD)",
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------- photos

# Photographs and micrographs that scikit-image ships in its wheel (the others download through pooch).
PHOTO_NAMES = (
    "astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text",
)  # fmt: skip
PHOTO_MAX_SIDE = 512


def build_photos(max_samples: int | None, seed: int) -> BuildResult:
    """scikit-image's bundled photos, longest side shrunk to `PHOTO_MAX_SIDE` (retina is 1411x1411)."""
    skdata = require_module("skimage.data", "pip install scikit-image")
    images, captions, missing = [], [], []
    for name in PHOTO_NAMES[:max_samples]:
        try:
            array = getattr(skdata, name)()
        except (ModuleNotFoundError, OSError, ValueError) as err:
            # A loader whose file is not bundled tries to fetch it through pooch; skip it.
            missing.append(f"{name} ({type(err).__name__})")
            continue
        image = PILImage.fromarray(array)
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE), PILImage.Resampling.LANCZOS)
        images.append(image)
        captions.append(name.replace("_", " "))
    if not images:
        raise SourceUnavailable(f"no scikit-image photo could be loaded offline: {missing}")
    notes = [f"not loadable offline: {missing}"] if missing else []
    features = Features({"image": Image(), "caption": Value("string")})
    return BuildResult(
        dataset=make_splits({"image": images, "caption": captions}, features),
        source="scikit-image skimage.data bundled photos: " + ", ".join(captions),
        license="per image, from the skimage.data docstrings: astronaut PD, camera CC0, coffee CC0, "
        "chelsea CC0, rocket PD; see each loader's docstring for the others",
        notes=notes,
    )


SUBSETS = {"digits": build_digits, "shapes": build_shapes, "emoji": build_emoji, "photos": build_photos}
