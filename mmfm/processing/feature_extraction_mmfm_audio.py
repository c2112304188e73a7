"""Audio feature extractor for the mmfm audio encoder: mono waveforms -> log-mel `input_features`.

The features are Kaldi-like log-mel filter banks as used by AST (Gong et al., 2021) and SSAST (Gong et al.,
2022), computed with `torch.stft` and `transformers.audio_utils.mel_filter_bank` so that torchaudio is not
needed: 25 ms Hann windows every 10 ms, no centring (a frame starts at sample 0 and a clip of N samples gives
`1 + (N - n_fft) // hop_length` frames), power spectrum, HTK mel filters, natural log floored at 1e-10, then
AST's AudioSet normalisation `(x - mean) / (2 * std)`. Unlike Kaldi's `fbank`, there is no dithering, DC
removal, pre-emphasis or zero-padding of the FFT to 512, so values differ slightly from torchaudio's.

Registration: `AutoFeatureExtractor.register(Config, MMFMAudioFeatureExtractor)`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import PaddingStrategy, logging

from .mmfm_processing_validation import (
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_return_tensors,
    describe,
    is_array_like,
    make_batch_feature,
    to_numpy,
)
from .mmfm_processor_config import OwnSettingsMixin

logger = logging.get_logger(__name__)

LOG_FLOOR = 1e-10
PADDING_CHOICES = (True, False, "longest", "max_length", "do_not_pad")


class MMFMAudioFeatureExtractor(OwnSettingsMixin, SequenceFeatureExtractor):
    r"""Turns mono waveforms into normalised log-mel frames for the mmfm audio encoder.

    Args:
        num_mel_bins: number of mel filters, the feature size F (128). With the default 25 ms window the FFT
            has 40 Hz bins, so 3 of the 128 lowest, narrowest HTK filters catch no FFT bin: those features
            are constant (log of the floor). Use fewer bins or a larger `n_fft` to avoid it.
        sampling_rate: expected sampling rate in Hz (16000). Inputs at another rate must be resampled first.
        n_fft: STFT window and FFT size in samples (400 = 25 ms at 16 kHz).
        hop_length: STFT hop in samples (160 = 10 ms at 16 kHz).
        f_min: lowest mel filter edge in Hz (20).
        f_max: highest mel filter edge in Hz (None = `sampling_rate / 2`).
        max_length: most frames a clip may give (1024 = 10.24 s, AST's input length), also the target length
            of `padding="max_length"`; None = unlimited. A longer clip raises unless `truncation=True`.
        padding: "longest" (default) pads to the longest clip of the batch, "max_length" to `max_length`.
        truncation: False (default): a clip longer than `max_length` frames raises `ValueError`. True keeps
            its first `max_length` frames.
        padding_value: value of padded frames (0.0).
        padding_side: "right" (default) or "left".
        do_normalize: apply `(x - mean) / (2 * std)`.
        mean: normalisation mean (AST's AudioSet value -4.2677393).
        std: normalisation std (AST's AudioSet value 4.5689974).
        return_attention_mask: return `attention_mask` (True).

    Returns (from `__call__`):
        `BatchFeature` with `input_features` float32 (B, T, num_mel_bins) and `attention_mask` int64 (B, T),
        1 for a real frame; T is the longest clip's frame count or `max_length`. For "pt"/"np" these are
        stacked tensors/arrays; for the transformers default `return_tensors=None`, lists of per-clip arrays.
    """

    model_input_names = ["input_features", "attention_mask"]
    # `save_pretrained` copies this file and its sibling imports into the folder and writes `auto_map`,
    # so `AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)` loads it without mmfm.
    _auto_class = "AutoFeatureExtractor"
    # This processor's entry in a composite MMFMProcessor's processor_config.json.
    processor_config_key = "audio_processor"

    def __init__(
        self,
        num_mel_bins: int = 128,
        sampling_rate: int = 16000,
        n_fft: int = 400,
        hop_length: int = 160,
        f_min: float = 20.0,
        f_max: float | None = None,
        max_length: int | None = 1024,
        padding: bool | str = "longest",
        truncation: bool = False,
        padding_value: float = 0.0,
        padding_side: str = "right",
        do_normalize: bool = True,
        mean: float = -4.2677393,
        std: float = 4.5689974,
        return_attention_mask: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("feature_size", None)  # always num_mel_bins; kept in the saved config for transformers
        super().__init__(
            feature_size=num_mel_bins,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            padding_side=padding_side,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.num_mel_bins = check_int("num_mel_bins", num_mel_bins, minimum=1)
        self.sampling_rate = check_int("sampling_rate", sampling_rate, minimum=1)
        self.n_fft = check_int("n_fft", n_fft, minimum=2)
        self.hop_length = check_int("hop_length", hop_length, minimum=1)
        self.f_min = float(f_min)
        self.f_max = None if f_max is None else float(f_max)
        self.max_length = check_int("max_length", max_length, minimum=1, allow_none=True)
        self.padding = check_choice("padding", padding, PADDING_CHOICES)
        self.truncation = check_bool("truncation", truncation)
        self.padding_value = float(padding_value)
        check_choice("padding_side", padding_side, ("right", "left"))
        self.do_normalize = check_bool("do_normalize", do_normalize)
        self.mean = float(mean)
        self.std = float(std)
        if self.std <= 0:
            raise ValueError(f"`std` must be > 0, got {std}.")
        nyquist = self.sampling_rate / 2
        if not 0 <= self.f_min < (self.f_max if self.f_max is not None else nyquist) <= nyquist:
            raise ValueError(
                f"Mel range must satisfy 0 <= `f_min` < `f_max` <= sampling_rate / 2 = {nyquist}, got "
                f"f_min={self.f_min}, f_max={self.f_max}."
            )
        # Built on first use, not saved: `FeatureExtractionMixin.to_dict` drops `mel_filters` and `window`.
        self.mel_filters: torch.Tensor | None = None
        self.window: torch.Tensor | None = None

    # ----------------------------------------------------------------------------------------------------
    # Features of one clip
    # ----------------------------------------------------------------------------------------------------

    def _filters(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mel_filters is None:
            with warnings.catch_warnings():
                # transformers warns (UserWarning) about empty filters on every construction; say it once.
                warnings.simplefilter("ignore", UserWarning)
                filters = mel_filter_bank(
                    num_frequency_bins=self.n_fft // 2 + 1,
                    num_mel_filters=self.num_mel_bins,
                    min_frequency=self.f_min,
                    max_frequency=self.f_max if self.f_max is not None else self.sampling_rate / 2,
                    sampling_rate=self.sampling_rate,
                    norm=None,
                    mel_scale="htk",
                )
            empty = int((filters.max(axis=0) == 0).sum())
            if empty:
                logger.info(
                    f"{empty} of {self.num_mel_bins} mel filters are empty with n_fft={self.n_fft} (FFT bins "
                    f"of {self.sampling_rate / self.n_fft:g} Hz); those features are constant."
                )
            self.mel_filters = torch.from_numpy(filters.astype(np.float32))  # (n_fft // 2 + 1, F)
            # Kaldi's "hanning" window is the symmetric Hann window.
            self.window = torch.hann_window(self.n_fft, periodic=False, dtype=torch.float32)
        return self.mel_filters, self.window

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of `num_samples` samples (no centring; trailing samples < hop are unused)."""
        return 0 if num_samples < self.n_fft else 1 + (num_samples - self.n_fft) // self.hop_length

    def extract_fbank(self, waveform: np.ndarray) -> np.ndarray:
        """Log-mel features of one validated mono float waveform (N,) -> (T, num_mel_bins) float32."""
        mel_filters, window = self._filters()
        signal = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        spectrum = torch.stft(
            signal,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=window,
            center=False,
            return_complex=True,
        )  # (n_fft // 2 + 1, T)
        power = spectrum.abs().pow(2).T  # (T, n_fft // 2 + 1)
        features = torch.clamp(power @ mel_filters, min=LOG_FLOOR).log()
        if self.do_normalize:
            features = (features - self.mean) / (2 * self.std)
        return features.numpy()

    # ----------------------------------------------------------------------------------------------------
    # Batch
    # ----------------------------------------------------------------------------------------------------

    def __call__(
        self,
        raw_speech: Any,
        sampling_rate: int | None = None,
        padding: bool | str | PaddingStrategy | None = None,
        max_length: int | None = None,
        truncation: bool | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Featurise one mono clip or a batch of clips.

        Args:
            raw_speech: one clip (a 1-D numpy array, torch tensor or list of floats, in [-1, 1]) or a list of
                clips. A 2-D array is refused, because it may be stereo: average its channels, or pass
                `list(array)` for a batch of equal-length clips.
            sampling_rate: the clips' sampling rate; must equal the extractor's. Pass it: without it a
                wrong rate cannot be detected (a warning is logged).
            padding, max_length, truncation, return_attention_mask: override the extractor's settings.
            return_tensors: "pt", "np" or None (default, transformers' convention: lists of per-clip arrays).

        Returns:
            `BatchFeature` with `input_features` (B, T, F) float32 and `attention_mask` (B, T) int64.
        """
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__call__ got unexpected arguments {sorted(kwargs)}.")
        self._check_sampling_rate(sampling_rate)
        padding = check_choice("padding", self.padding if padding is None else padding, PADDING_CHOICES)
        padding = {True: "longest", False: "do_not_pad"}.get(padding, padding)
        max_length = self.max_length if max_length is None else check_int("max_length", max_length, minimum=1)
        truncation = self.truncation if truncation is None else check_bool("truncation", truncation)
        return_attention_mask = (
            self.return_attention_mask if return_attention_mask is None else return_attention_mask
        )
        return_tensors = check_return_tensors(return_tensors)
        if padding == "max_length" and max_length is None:
            raise ValueError("`padding='max_length'` needs `max_length` (frames), got None.")

        clips = [(self._validate_clip(clip, field), field) for clip, field in self._split_batch(raw_speech)]
        features = []
        for clip, field in clips:
            frames = self.num_frames(len(clip))
            if max_length is not None and frames > max_length:
                if not truncation:
                    raise ValueError(
                        f"`{field}` gives {frames} frames ({len(clip) / self.sampling_rate:.2f} s), more "
                        f"than `max_length`={max_length}. Pass `truncation=True` to keep the first "
                        f"{max_length} frames, raise `max_length`, or split the clip."
                    )
                logger.info(f"Truncating {field} from {frames} to {max_length} frames.")
                clip = clip[: (max_length - 1) * self.hop_length + self.n_fft]
            features.append(self.extract_fbank(clip))
        return self._pad(features, padding, max_length, return_attention_mask, return_tensors)

    def _check_sampling_rate(self, sampling_rate: int | None) -> None:
        if sampling_rate is None:
            logger.warning(
                "It is strongly recommended to pass the `sampling_rate` argument to "
                f"`{type(self).__name__}()`. Failing to do so can result in silent errors that might be hard "
                "to debug."
            )
        elif isinstance(sampling_rate, bool) or not isinstance(sampling_rate, int | float | np.number):
            raise TypeError(
                f"`sampling_rate` must be a number of samples per second (an int, e.g. {self.sampling_rate}), got "
                f"{describe(sampling_rate)}."
            )
        elif sampling_rate != self.sampling_rate:
            raise ValueError(
                f"`sampling_rate` is {sampling_rate} Hz but this feature extractor expects "
                f"{self.sampling_rate} Hz. Resample the audio first, e.g. `torchaudio.functional.resample(x, "
                f"{sampling_rate}, {self.sampling_rate})` or `librosa.resample(x, orig_sr={sampling_rate}, "
                f"target_sr={self.sampling_rate})`."
            )

    @staticmethod
    def _split_batch(raw_speech: Any) -> list[tuple[Any, str]]:
        """One clip or a list of clips -> [(clip, field name)], refusing lists that mix clips and samples."""
        if isinstance(raw_speech, list | tuple):
            if len(raw_speech) == 0:
                raise ValueError("`raw_speech` is an empty list: expected a clip or a list of clips.")
            nested = [is_array_like(item) for item in raw_speech]
            if all(nested):
                return [(clip, f"raw_speech[{i}]") for i, clip in enumerate(raw_speech)]
            if any(nested):
                first = nested.index(True)
                raise ValueError(
                    f"`raw_speech` mixes ranks: item {first} is {describe(raw_speech[first])} while item "
                    f"{nested.index(False)} is a number. Pass one clip (a flat list of floats or a 1-D "
                    "array) or a list of 1-D clips."
                )
        return [(raw_speech, "raw_speech")]

    def _validate_clip(self, clip: Any, field: str) -> np.ndarray:
        if not is_array_like(clip):
            raise TypeError(
                f"`{field}` must be a 1-D numpy array, torch tensor or list of floats, got {describe(clip)}."
            )
        try:
            array = to_numpy(clip, field, kinds="f")
        except TypeError as err:
            if isinstance(clip, list | tuple) or getattr(clip, "dtype", None) is None:
                raise
            raise TypeError(
                f"{err} Integer PCM must be scaled to float in [-1, 1] first, e.g. `x.astype(np.float32) / "
                "32768` for int16."
            ) from None
        if array.ndim != 1:
            stereo_hint = ""
            if array.ndim == 2:
                axis = 0 if array.shape[0] < array.shape[1] else 1
                stereo_hint = (
                    f" If it is multi-channel audio, average the channels (`x.mean(axis={axis})`); if it is "
                    "a batch of equal-length clips, pass `list(x)`."
                )
            raise ValueError(
                f"`{field}` must be a mono waveform of shape (num_samples,), got "
                f"{describe(clip)}.{stereo_hint}"
            )
        if array.size == 0:
            raise ValueError(
                f"`{field}` is an empty waveform: expected at least `n_fft`={self.n_fft} samples."
            )
        if array.size < self.n_fft:
            raise ValueError(
                f"`{field}` has {array.size} samples, fewer than one STFT frame (`n_fft`={self.n_fft} "
                f"samples = {1000 * self.n_fft / self.sampling_rate:g} ms). Pad it with zeros or drop it."
            )
        check_finite(array, field)
        return array

    def _pad(
        self,
        features: list[np.ndarray],
        padding: str,
        max_length: int | None,
        return_attention_mask: bool,
        return_tensors: str | None,
    ) -> BatchFeature:
        lengths = [len(f) for f in features]
        if padding == "do_not_pad":
            if return_tensors is not None and len(set(lengths)) > 1:
                raise ValueError(
                    f"Clips give different frame counts {lengths} with `padding=False`, so they cannot be "
                    f"stacked into return_tensors={return_tensors!r}. Use `padding='longest'` or "
                    "return_tensors=None."
                )
            target = None
        else:
            target = max_length if padding == "max_length" else max(lengths)
        batch_features, masks = [], []
        for feats in features:
            length = len(feats) if target is None else target
            padded = np.full((length, self.num_mel_bins), self.padding_value, dtype=np.float32)
            mask = np.zeros(length, dtype=np.int64)
            real = (
                slice(0, len(feats)) if self.padding_side == "right" else slice(length - len(feats), length)
            )
            padded[real] = feats
            mask[real] = 1
            batch_features.append(padded)
            masks.append(mask)
        data: dict[str, Any] = {"input_features": batch_features}
        if return_attention_mask:
            data["attention_mask"] = masks
        if return_tensors is None:
            return BatchFeature(data)
        return make_batch_feature({k: np.stack(v) for k, v in data.items()}, return_tensors)


__all__ = ["MMFMAudioFeatureExtractor"]
