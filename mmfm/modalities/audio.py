"""The audio modality: waveforms (+ sampling rate) -> log-mel `input_features`; spectrogram patches count
throughput. Clips are arrays, or audio files (a path, or an undecoded `datasets.Audio` cell) decoded here, so a
file that cannot be decoded is one bad row."""

from __future__ import annotations

import io
import os
import wave
from typing import Any

import datasets
import numpy as np

from ..models import MMFMAudioModel
from ..processing import MMFMAudioFeatureExtractor
from .spec import ModalitySpec


def build_processor(config, tokenizer=None) -> MMFMAudioFeatureExtractor:
    return MMFMAudioFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_frames)


def read_wav(source: Any) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], sampling rate) of a PCM WAV file (path or file object)."""
    with wave.open(source, "rb") as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        data = reader.readframes(reader.getnframes())
    if width == 1:  # 8-bit WAV is unsigned
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3)
        padded = np.zeros((len(raw), 4), dtype=np.uint8)
        padded[:, 1:] = raw  # little-endian 24-bit in the top bytes of an int32
        samples = padded.view("<i4").ravel().astype(np.float32) / 2**31
    elif width in (2, 4):
        samples = np.frombuffer(data, dtype=f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
    else:
        raise ValueError(f"unsupported WAV sample width {width} bytes")
    return samples.reshape(-1, channels).mean(axis=1), rate


def open_clip(item: Any) -> tuple[np.ndarray, int | None]:
    """(samples, sampling rate or None) of a clip: an array or list, a decoded `{"array", "sampling_rate"}`, an
    audio file path or an undecoded `datasets.Audio` cell (`{"bytes", "path"}`). PCM WAV is read here; other
    formats through `datasets` (torchcodec). `ValueError` naming the file when it cannot be decoded (the data
    pipeline then skips and counts the row)."""
    if isinstance(item, dict) and "array" in item:
        return np.asarray(item["array"], dtype=np.float32), item.get("sampling_rate")
    if isinstance(item, dict) and ("bytes" in item or "path" in item):
        data, name = item.get("bytes"), item.get("path")
    elif isinstance(item, (str, os.PathLike)):
        data, name = None, os.fspath(item)
    else:
        return np.asarray(item, dtype=np.float32), None
    if not data and not name:
        raise ValueError("an audio cell holds neither bytes nor a path")
    what = repr(name) if name else f"of {len(data)} bytes"
    try:
        return read_wav(io.BytesIO(data) if data else name)
    except (wave.Error, EOFError) as err:
        if not datasets.config.TORCHCODEC_AVAILABLE:
            raise ValueError(
                f"cannot decode audio {what} as PCM WAV ({err}); install torchcodec for other formats"
            ) from err
    except Exception as err:  # a missing file, truncated data, ...
        raise ValueError(f"cannot decode audio {what}: {type(err).__name__}: {err}") from err
    try:
        samples = datasets.Audio().decode_example({"bytes": data or None, "path": name}).get_all_samples()
        return samples.data.float().mean(dim=0).numpy(), int(samples.sample_rate)
    except Exception as err:
        raise ValueError(f"cannot decode audio {what}: {type(err).__name__}: {err}") from err


def audio_items(rows: dict[str, list], text_column: str) -> tuple[list[np.ndarray], dict]:
    opened = [open_clip(clip) for clip in rows["audio"]]
    clips = [clip for clip, _ in opened]
    rates = rows.get("sampling_rate") or [rate for _, rate in opened]  # a column wins over the files' rates
    if all(rate is None for rate in rates):
        return clips, {"return_attention_mask": True}
    if any(rate is None for rate in rates):
        raise ValueError(
            "Some clips of the batch have a sampling rate (decoded files) and others do not (arrays): add a "
            "`sampling_rate` column."
        )
    rates = sorted({int(rate) for rate in rates})
    if len(rates) > 1:
        raise ValueError(
            f"The `sampling_rate` column mixes rates {rates} within one batch: resample the clips to one rate "
            "(e.g. `dataset.cast_column`) before extracting features."
        )
    # Batches of clips need the padding mask whatever the saved extractor's default (a composite's export
    # turns it off, since transformers' zero-shot audio pipeline passes the text's attention_mask too).
    return clips, {"sampling_rate": rates[0], "return_attention_mask": True}


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
