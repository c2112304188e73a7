"""mmfm vision encoder: ViT patch embedding, class token, 2-D positions for any patch-multiple size,
and an optional visible-token input so masked objectives encode visible patches only (MAE-style).

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_vision import MMFMVisionConfig
from .mmfm_layers import (
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_finite,
    check_rank,
    sincos_embedding_2d,
)


@dataclass
class MMFMVisionModelOutput(ModelOutput):
    r"""Output of [`MMFMVisionModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + L, D)`): class token then patch tokens
            (all `L = (H / p) * (W / p)` patches, or only the `visible_indices` ones, in that order).
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): image embedding (see `config.pooling`).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, 1 + L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, 1 + L, 1 + L)` (eager).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMVisionEmbeddings(nn.Module):
    """Patchify with a strided convolution, add 2-D positions, keep visible patches, prepend [CLS]."""

    def __init__(self, config: MMFMVisionConfig):
        super().__init__()
        self.config = config
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        # Index 0 is the class token's position, then the patch grid of `image_size` in row-major order.
        self.position_embeddings = (
            nn.Parameter(torch.zeros(1, 1 + config.num_patches, config.hidden_size))
            if config.position_embedding_type == "learned"
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def patch_positions(self, grid_height: int, grid_width: int, dtype: torch.dtype) -> torch.Tensor:
        """Positions of a (grid_height, grid_width) patch grid: (1, grid_height * grid_width, D)."""
        device = self.patch_embedding.weight.device
        if self.position_embeddings is None:
            table = sincos_embedding_2d(grid_height, grid_width, self.config.hidden_size, device=device)
            return table.to(dtype).unsqueeze(0)
        table = self.position_embeddings[:, 1:]
        side = self.config.image_size // self.config.patch_size
        if (grid_height, grid_width) == (side, side):
            return table.to(dtype)
        # Bicubic interpolation of the learned grid, as timm / transformers' ViT do for other sizes.
        grid = table.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = nn.functional.interpolate(
            grid, size=(grid_height, grid_width), mode="bicubic", align_corners=False
        )
        return grid.permute(0, 2, 3, 1).reshape(1, grid_height * grid_width, -1).to(dtype)

    def forward(
        self, pixel_values: torch.Tensor, visible_indices: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, 1 + L, D) tokens; L = all patches or `visible_indices.shape[1]`."""
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        batch, dim, grid_height, grid_width = patches.shape
        tokens = patches.flatten(2).transpose(1, 2)  # (B, L, D), row-major patch order
        tokens = tokens + self.patch_positions(grid_height, grid_width, tokens.dtype)
        if visible_indices is not None:
            tokens = torch.gather(tokens, 1, visible_indices.unsqueeze(-1).expand(-1, -1, dim))
        cls = self.cls_token.expand(batch, -1, -1)
        if self.position_embeddings is not None:
            cls = cls + self.position_embeddings[:, :1]
        return self.dropout(torch.cat([cls.to(tokens.dtype), tokens], dim=1))


class MMFMVisionPreTrainedModel(MMFMEncoderPreTrainedModel):
    config: MMFMVisionConfig
    config_class = MMFMVisionConfig
    base_model_prefix = "encoder"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _no_split_modules = ["MMFMLayer", "MMFMVisionEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMVisionEmbeddings):
            std = self.config.initializer_range
            init.trunc_normal_(module.cls_token, std=std)
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, std=std)


class MMFMVisionModel(MMFMVisionPreTrainedModel):
    """Vision encoder: `pixel_values` (B, C, H, W) -> tokens (B, 1 + L, D) and an embedding (B, D)."""

    def __init__(self, config: MMFMVisionConfig):
        super().__init__(config)
        self.embeddings = MMFMVisionEmbeddings(config)
        self.transformer = MMFMTransformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def grid_size(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """Patch grid (rows, columns) of a (B, C, H, W) batch."""
        return pixel_values.shape[-2] // self.config.patch_size, pixel_values.shape[
            -1
        ] // self.config.patch_size

    def _check_inputs(self, pixel_values: torch.Tensor, visible_indices: torch.Tensor | None) -> None:
        check_rank("pixel_values", pixel_values, 4, "(batch_size, num_channels, height, width)")
        _, channels, height, width = pixel_values.shape
        patch = self.config.patch_size
        if channels != self.config.num_channels:
            raise ValueError(
                f"`pixel_values` has {channels} channels, the model expects num_channels="
                f"{self.config.num_channels}. Convert the images (e.g. to RGB) in the image processor."
            )
        if height < patch or width < patch:
            raise ValueError(
                f"`pixel_values` images are {height}x{width}, smaller than one {patch}x{patch} patch; "
                "resize them (image processor `size`)."
            )
        if height % patch or width % patch:
            raise ValueError(
                f"`pixel_values` height and width ({height}x{width}) must be multiples of patch_size "
                f"({patch}); resize or crop them in the image processor."
            )
        if self.config.validate_inputs:
            check_finite("pixel_values", pixel_values)
        if visible_indices is not None:
            check_rank("visible_indices", visible_indices, 2, "(batch_size, num_visible_patches)")
            num_patches = (height // patch) * (width // patch)
            if visible_indices.shape[0] != pixel_values.shape[0]:
                raise ValueError(
                    f"`visible_indices` has batch size {visible_indices.shape[0]}, `pixel_values` has "
                    f"{pixel_values.shape[0]}."
                )
            if visible_indices.shape[1] == 0:
                raise ValueError("`visible_indices` keeps no patch; keep at least one visible patch.")
            if self.config.validate_inputs:
                low, high = int(visible_indices.min()), int(visible_indices.max())
                if low < 0 or high >= num_patches:
                    raise ValueError(
                        f"`visible_indices` must lie in [0, {num_patches}) for {height}x{width} images, "
                        f"got values in [{low}, {high}]."
                    )

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        visible_indices: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMVisionModelOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): H and W multiples of `patch_size`.
            visible_indices (`torch.LongTensor` of shape `(B, L_visible)`, *optional*): row-major indices
                of the patches to encode; the others are dropped before the transformer (MAE), so the
                cost scales with the visible patches only.
        """
        self._check_inputs(pixel_values, visible_indices)
        embeddings = self.embeddings(pixel_values, visible_indices)
        hidden, all_hidden, attentions = self.transformer(
            embeddings,
            None,  # every token is real: no padding inside an image
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        pooled = hidden[:, 0] if self.config.pooling == "cls" else hidden[:, 1:].mean(dim=1)
        return MMFMVisionModelOutput(
            last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden, attentions=attentions
        )


__all__ = ["MMFMVisionModel", "MMFMVisionModelOutput", "MMFMVisionPreTrainedModel"]
