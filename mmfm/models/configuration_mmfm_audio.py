"""Configuration of the mmfm audio encoder (model type `mmfm_audio`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMEncoderConfig, require_choice, require_positive_int


class MMFMAudioConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMAudioModel`], an audio spectrogram transformer over log-mel patches
    (AST, Gong et al., 2021; SSAST, Gong et al., 2022).

    Patches are `patch_frequency_size` mel bins by `patch_time_size` frames. SSAST's patch-based model
    uses 16x16; its frame-based model uses `patch_frequency_size = num_mel_bins` and 2 frames.

    Args:
        num_mel_bins: mel bins per frame of `input_features` (must match the feature extractor).
        patch_frequency_size: mel bins per patch; divides `num_mel_bins`.
        patch_time_size: frames per patch. Clips are padded with silence (zeros) to a whole patch.
        max_time_patches: size of the learned time-position table; clips longer than
            `max_time_patches * patch_time_size` frames are rejected (at a 10 ms hop, 64 x 16 frames is
            10.24 s).
        pooling: clip embedding from the `"cls"` token or the `"mean"` of real patch tokens.
        (transformer fields and `pretraining_*`: see `MMFMEncoderConfig`.)
    """

    model_type = "mmfm_audio"
    modality: ClassVar[str] = "audio"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_audio.MMFMAudioConfig",
        "AutoModel": "modeling_mmfm_audio.MMFMAudioModel",
        "AutoModelForAudioClassification": "modeling_mmfm_audio.MMFMAudioForAudioClassification",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"num_mel_bins": 32, "patch_frequency_size": 8, "patch_time_size": 4, "max_time_patches": 64}
    }

    num_mel_bins: int = 128
    patch_frequency_size: int = 16
    patch_time_size: int = 16
    max_time_patches: int = 64
    pooling: str = "cls"

    def check_consistency(self) -> None:
        super().check_consistency()
        require_positive_int(
            self, "num_mel_bins", "patch_frequency_size", "patch_time_size", "max_time_patches"
        )
        require_choice(self, "pooling", ("cls", "mean"))
        if self.num_mel_bins % self.patch_frequency_size:
            raise ValueError(
                f"MMFMAudioConfig.num_mel_bins ({self.num_mel_bins}) must be a multiple of "
                f"patch_frequency_size ({self.patch_frequency_size})."
            )

    @property
    def num_frequency_patches(self) -> int:
        return self.num_mel_bins // self.patch_frequency_size

    @property
    def max_frames(self) -> int:
        return self.max_time_patches * self.patch_time_size


__all__ = ["MMFMAudioConfig"]
