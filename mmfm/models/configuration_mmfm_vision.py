"""Configuration of the mmfm vision encoder (model type `mmfm_vision`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMEncoderConfig, require_choice, require_positive_int


class MMFMVisionConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMVisionModel`], a ViT (Dosovitskiy et al., 2021) with a class token.

    Args:
        image_size: side of the square images the position table is sized for; other sizes that are
            multiples of `patch_size` are accepted and the learned positions are interpolated.
        patch_size: side of the square patches (and the stride of the patch embedding).
        num_channels: input channels (3 for RGB).
        position_embedding_type: `"learned"` (ViT; bicubic interpolation to other grids) or `"sincos"`
            (fixed 2-D sine-cosine with MAE's table layout, computed for any grid; the MAE and DropPos
            objectives default to it, as both papers do).
        pooling: image embedding from the `"cls"` token or the `"mean"` of patch tokens.
        (transformer fields and `pretraining_*`: see `MMFMEncoderConfig`; the objectives' own fields, such
        as MAE's mask ratio and decoder sizes, live in `pretraining_config`.)
    """

    model_type = "mmfm_vision"
    modality: ClassVar[str] = "vision"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_vision.MMFMVisionConfig",
        "AutoModel": "modeling_mmfm_vision.MMFMVisionModel",
        "AutoModelForImageClassification": "modeling_mmfm_vision.MMFMVisionForImageClassification",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {"tiny": {"image_size": 32, "patch_size": 8}}

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    position_embedding_type: str = "learned"
    pooling: str = "cls"

    def check_consistency(self) -> None:
        super().check_consistency()
        require_positive_int(self, "image_size", "patch_size", "num_channels")
        require_choice(self, "position_embedding_type", ("learned", "sincos"))
        require_choice(self, "pooling", ("cls", "mean"))
        if self.image_size % self.patch_size:
            raise ValueError(
                f"MMFMVisionConfig.image_size ({self.image_size}) must be a multiple of patch_size "
                f"({self.patch_size})."
            )
        if self.position_embedding_type == "sincos" and self.hidden_size % 4:
            raise ValueError(
                f"MMFMVisionConfig: sincos positions need hidden_size divisible by 4, got {self.hidden_size}."
            )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


__all__ = ["MMFMVisionConfig"]
