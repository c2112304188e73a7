"""Configuration of the mmfm vision encoder (model type `mmfm_vision`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import (
    MMFMEncoderConfig,
    check_decoder_sizes,
    require_choice,
    require_open_fraction,
    require_positive_int,
)


class MMFMVisionConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMVisionModel`], a ViT (Dosovitskiy et al., 2021) with a class token.

    Args:
        image_size: side of the square images the position table is sized for; other sizes that are
            multiples of `patch_size` are accepted and the learned positions are interpolated.
        patch_size: side of the square patches (and the stride of the patch embedding).
        num_channels: input channels (3 for RGB).
        position_embedding_type: `"learned"` (ViT; bicubic interpolation to other grids) or `"sincos"`
            (fixed 2-D sine-cosine as in MAE, computed for any grid).
        pooling: image embedding from the `"cls"` token or the `"mean"` of patch tokens.
        pretraining_objective: what [`MMFMVisionForPreTraining`] trains: `"mae"` (masked autoencoder, He et
            al., 2022: reconstruct the pixels of removed patches) or `"droppos"` (DropPos, Wang et al., 2023:
            classify the position of patches whose position embedding was dropped).
        mask_ratio: fraction of patches removed before the encoder (both objectives; MAE: 0.75).
        norm_pix_loss: MAE targets are per-patch normalised pixels (the paper's better variant).
        position_drop_ratio: DropPos: fraction of the visible patches whose position is replaced by a
            learned [MASK] position (0.75 in the paper).
        position_smoothing_sigma: DropPos position smoothing: soft targets exp(-d^2 / sigma^2) over the patch
            grid distance d (paper: sigma decays from 1 to 0 during training; 0 gives one-hot targets).
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads,
        decoder_intermediate_size: the light pre-norm transformer decoder of both objectives
            (MAE: 512 wide, 8 blocks, 16 heads, MLP 2048).
        (transformer fields: see `MMFMEncoderConfig`.)
    """

    model_type = "mmfm_vision"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_vision.MMFMVisionConfig",
        "AutoModel": "modeling_mmfm_vision.MMFMVisionModel",
        "AutoModelForPreTraining": "modeling_mmfm_vision.MMFMVisionForPreTraining",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "image_size": 32,
            "patch_size": 8,
            "decoder_hidden_size": 32,
            "decoder_num_hidden_layers": 1,
            "decoder_num_attention_heads": 4,
            "decoder_intermediate_size": 64,
        },
        "small": {
            "decoder_hidden_size": 256,
            "decoder_num_hidden_layers": 4,
            "decoder_num_attention_heads": 8,
            "decoder_intermediate_size": 1024,
        },
    }

    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    position_embedding_type: str = "learned"
    pooling: str = "cls"
    pretraining_objective: str = "mae"
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    position_drop_ratio: float = 0.75
    position_smoothing_sigma: float = 1.0
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048

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
        require_choice(self, "pretraining_objective", ("mae", "droppos"))
        check_decoder_sizes(self)
        require_open_fraction(self, "mask_ratio", "position_drop_ratio")
        if self.position_smoothing_sigma < 0:
            raise ValueError(
                f"MMFMVisionConfig.position_smoothing_sigma must be >= 0, got {self.position_smoothing_sigma}."
            )
        if self.position_embedding_type == "sincos" and self.hidden_size % 4:
            raise ValueError(
                f"MMFMVisionConfig: sincos positions need hidden_size divisible by 4, got {self.hidden_size}."
            )

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


__all__ = ["MMFMVisionConfig"]
