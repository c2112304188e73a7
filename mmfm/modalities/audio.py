"""The audio modality: waveforms (+ sampling rate) -> log-mel `input_features`; spectrogram patches count
throughput."""

from __future__ import annotations

import numpy as np

from ..models import MMFMAudioModel
from ..processing import MMFMAudioFeatureExtractor
from .spec import ModalitySpec


def build_processor(config, tokenizer=None) -> MMFMAudioFeatureExtractor:
    return MMFMAudioFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_frames)


def audio_items(rows: dict[str, list], text_column: str) -> tuple[list[np.ndarray], dict]:
    clips = [np.asarray(clip, dtype=np.float32) for clip in rows["audio"]]
    if "sampling_rate" not in rows:
        return clips, {}
    rates = sorted({int(rate) for rate in rows["sampling_rate"]})
    if len(rates) > 1:
        raise ValueError(
            f"The `sampling_rate` column mixes rates {rates} within one batch: resample the clips to one rate "
            "(e.g. `dataset.cast_column`) before extracting features."
        )
    return clips, {"sampling_rate": rates[0]}


def count_patches(inputs, config) -> int:
    """Patches holding a real frame: per clip, ceil(real frames / patch_time_size) x frequency patches."""
    features = inputs["input_features"]  # (B, T, F) log-mel frames
    mask = inputs.get("attention_mask")
    frames = (
        mask.sum(dim=1) if mask is not None else features.new_full((features.shape[0],), features.shape[1])
    )
    time_patches = (frames + config.patch_time_size - 1) // config.patch_time_size
    return int(time_patches.sum()) * config.num_frequency_patches


SPEC = ModalitySpec(
    name="audio",
    encoder_class=MMFMAudioModel,
    processor_class=MMFMAudioFeatureExtractor,
    build_processor=build_processor,
    required_columns=("audio",),
    optional_columns=("sampling_rate",),
    row_adapter=audio_items,
    unit="patches",
    count_units=count_patches,
    default_objective="ssast",
)
