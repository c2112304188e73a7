"""mmfm vision encoder: ViT patch embedding, class token, 2-D positions for any patch-multiple size,
and an optional visible-token input so masked objectives encode visible patches only (MAE-style).

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_vision import MMFMVisionConfig
from .mmfm_heads import MMFMHeadMixin, classifier_dropout, sequence_classification_loss
from .mmfm_layers import (
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_finite,
    check_tensor,
    check_token_flags,
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

    def __init__(self, config: MMFMVisionConfig, use_position_mask_token: bool = False):
        super().__init__()
        self.config = config
        # DropPos replaces the position of some patches by this learned token; only its pretraining model has it.
        self.position_mask_token = (
            nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_position_mask_token else None
        )
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
        self,
        pixel_values: torch.Tensor,
        visible_indices: torch.Tensor | None = None,
        dropped_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, C, H, W) pixels -> (B, 1 + L, D) tokens; L = all patches or `visible_indices.shape[1]`;
        tokens where (B, L) `dropped_positions` is true get the position mask token instead of a position."""
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        batch, dim, grid_height, grid_width = patches.shape
        tokens = patches.flatten(2).transpose(1, 2)  # (B, L, D), row-major patch order
        positions = self.patch_positions(grid_height, grid_width, tokens.dtype).expand(batch, -1, -1)
        if visible_indices is not None:
            index = visible_indices.unsqueeze(-1).expand(-1, -1, dim)
            tokens, positions = torch.gather(tokens, 1, index), torch.gather(positions, 1, index)
        if dropped_positions is not None:
            mask_token = self.position_mask_token.to(positions.dtype)
            positions = torch.where(dropped_positions.unsqueeze(-1), mask_token, positions)
        tokens = tokens + positions
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
            if module.position_mask_token is not None:
                init.trunc_normal_(module.position_mask_token, std=std)


class MMFMVisionModel(MMFMVisionPreTrainedModel):
    """Vision encoder: `pixel_values` (B, C, H, W) -> tokens (B, 1 + L, D) and an embedding (B, D)."""

    # DropPos's position mask token is built only for its model; a bare encoder loads without it.
    _keys_to_ignore_on_load_unexpected = [r"position_mask_token$"]

    def __init__(self, config: MMFMVisionConfig, use_position_mask_token: bool = False):
        super().__init__(config)
        self.embeddings = MMFMVisionEmbeddings(config, use_position_mask_token=use_position_mask_token)
        self.transformer = MMFMTransformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def grid_size(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """Patch grid (rows, columns) of a (B, C, H, W) batch."""
        patch = self.config.patch_size
        return pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch

    def _check_inputs(self, pixel_values: torch.Tensor, visible_indices: torch.Tensor | None) -> None:
        device = self.input_device()
        check_tensor(
            "pixel_values", pixel_values, "(batch_size, num_channels, height, width)", 4, "float", device,
            hint="Run images through the image processor, which rescales and normalises them to float32.",
        )  # fmt: skip
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
            check_tensor(
                "visible_indices", visible_indices, "(batch_size, num_visible_patches)", 2, "index", device
            )
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

    def _check_dropped_positions(self, pixel_values, visible_indices, dropped_positions) -> None:
        grid_height, grid_width = self.grid_size(pixel_values)
        length = visible_indices.shape[1] if visible_indices is not None else grid_height * grid_width
        check_token_flags(
            "dropped_positions", dropped_positions, (pixel_values.shape[0], length),
            self.embeddings.position_mask_token, "use_position_mask_token", "MMFMVisionForDropPos",
        )  # fmt: skip

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        visible_indices: torch.LongTensor | None = None,
        dropped_positions: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMVisionModelOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): H and W multiples of `patch_size`.
            visible_indices (`torch.LongTensor` of shape `(B, L_visible)`, *optional*): row-major indices
                of the patches to encode; the others are dropped before the transformer (MAE), so the
                cost scales with the visible patches only.
            dropped_positions (`torch.BoolTensor` of shape `(B, L)`, *optional*): for the encoded patches
                (all, or the visible ones), True where the position embedding is replaced by the learned
                position mask token (DropPos; needs a model built with `use_position_mask_token=True`).
        """
        self._check_inputs(pixel_values, visible_indices)
        if dropped_positions is not None:
            self._check_dropped_positions(pixel_values, visible_indices, dropped_positions)
        embeddings = self.embeddings(pixel_values, visible_indices, dropped_positions)
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


class MMFMVisionForImageClassification(MMFMHeadMixin, MMFMVisionPreTrainedModel):
    """Vision encoder + dropout + linear classifier on the image embedding (`config.pooling`: class token or
    mean of patches), as `ViTForImageClassification`: (B, num_labels), classification or regression by
    `config.problem_type`."""

    auto_classes = ("AutoModelForImageClassification",)
    _auto_class = "AutoModelForImageClassification"

    def __init__(self, config: MMFMVisionConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMVisionModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> ImageClassifierOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`): see [`MMFMVisionModel`].
            labels (`torch.Tensor` of shape `(B,)` or `(B, num_labels)`, *optional*): class ids (single-label,
                -100 ignored), 0/1 floats (multi-label) or float targets (regression).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled samples of the accumulated step.

        Returns:
            `ImageClassifierOutput`: `loss` (with `labels`), `logits` (B, num_labels), `hidden_states` and
            `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p * p * C) patches in row-major order, pixels (row, column, channel) inside."""
    batch, channels, height, width = pixel_values.shape
    rows, columns = height // patch_size, width // patch_size
    patches = pixel_values.reshape(batch, channels, rows, patch_size, columns, patch_size)
    return patches.permute(0, 2, 4, 3, 5, 1).reshape(
        batch, rows * columns, patch_size * patch_size * channels
    )


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """Inverse of `patchify`: (B, L, p * p * C) -> (B, C, H, W)."""
    batch = patches.shape[0]
    rows, columns = grid
    images = patches.reshape(batch, rows, columns, patch_size, patch_size, channels)
    return images.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, rows * patch_size, columns * patch_size)


__all__ = [
    "MMFMVisionForImageClassification",
    "MMFMVisionModel",
    "MMFMVisionModelOutput",
    "MMFMVisionPreTrainedModel",
    "patchify",
    "unpatchify",
]
