"""Configuration of the mmfm time-series encoder (model type `mmfm_timeseries`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMEncoderConfig, require_choice, require_positive_int


class MMFMTimeSeriesConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMTimeSeriesModel`], a channel-independent patch transformer (PatchTST,
    Nie et al., 2023) with reversible instance normalisation (RevIN, Kim et al., 2022).

    Args:
        context_length: L, time steps per input window (the processor pads or cuts to it).
        patch_length: time steps per patch.
        patch_stride: step between patch starts; `(context_length - patch_length)` must be a multiple.
            Equal to `patch_length` (non-overlapping, as PatchTST's self-supervised setting) by default;
            the pretraining objectives need non-overlapping patches, or a masked or future patch would
            be visible through its neighbours.
        num_input_channels: C when fixed (needed for `revin_affine`); None accepts any channel count,
            since channels are encoded independently.
        scaling: instance normalisation over observed values: `"std"` (mean and standard deviation),
            `"mean"` (mean absolute value, no shift) or `"none"`.
        revin_affine: learn a per-channel affine map after normalisation (RevIN); needs
            `num_input_channels`.
        minimum_scale: floor of the scale, so constant series do not divide by zero.
        is_causal: patches attend only to earlier patches (GPHT-style generative models).
        prediction_length: H, future time steps `MMFMTimeSeriesForPrediction` forecasts (PatchTST's field).
        (transformer fields and `pretraining_*`: see `MMFMEncoderConfig`.)
    """

    model_type = "mmfm_timeseries"
    modality: ClassVar[str] = "timeseries"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_timeseries.MMFMTimeSeriesConfig",
        "AutoModel": "modeling_mmfm_timeseries.MMFMTimeSeriesModel",
        # No time-series classification Auto class exists: sequence classification serves classification
        # and regression (a saved regression head maps it to itself, see ExportableConfigMixin).
        "AutoModelForSequenceClassification": "modeling_mmfm_timeseries.MMFMTimeSeriesForClassification",
        "AutoModelForTimeSeriesPrediction": "modeling_mmfm_timeseries.MMFMTimeSeriesForPrediction",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"context_length": 64, "patch_length": 8, "patch_stride": 8}
    }

    context_length: int = 512
    patch_length: int = 16
    patch_stride: int = 16
    num_input_channels: int | None = None
    scaling: str = "std"
    revin_affine: bool = False
    minimum_scale: float = 1e-5
    is_causal: bool = False
    prediction_length: int = 24

    def check_consistency(self) -> None:
        super().check_consistency()
        require_positive_int(self, "context_length", "patch_length", "patch_stride", "prediction_length")
        require_choice(self, "scaling", ("std", "mean", "none"))
        if self.num_input_channels is not None:
            require_positive_int(self, "num_input_channels")
        elif self.revin_affine:
            raise ValueError("MMFMTimeSeriesConfig.revin_affine=True needs num_input_channels to be set.")
        if self.patch_length > self.context_length:
            raise ValueError(
                f"MMFMTimeSeriesConfig.patch_length ({self.patch_length}) must not exceed context_length "
                f"({self.context_length})."
            )
        if (self.context_length - self.patch_length) % self.patch_stride:
            raise ValueError(
                f"MMFMTimeSeriesConfig: context_length ({self.context_length}) - patch_length "
                f"({self.patch_length}) must be a multiple of patch_stride ({self.patch_stride}) so every "
                "time step falls in a patch."
            )

    @property
    def num_patches(self) -> int:
        return (self.context_length - self.patch_length) // self.patch_stride + 1


__all__ = ["MMFMTimeSeriesConfig"]
