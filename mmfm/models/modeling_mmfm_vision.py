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
    check_token_flags,
    check_rank,
    decoder_config,
    sincos_embedding_2d,
)
from .mmfm_losses import masked_mse, normalize_patch_targets, soft_cross_entropy
from .mmfm_masking import random_masking


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

    # Loading the encoder from a pretraining checkpoint leaves its heads behind, silently.
    _keys_to_ignore_on_load_unexpected = [
        r"^decoder",
        r"^mask_token",
        r"^position_head",
        r"position_mask_token",
    ]

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

    def _check_dropped_positions(self, pixel_values, visible_indices, dropped_positions) -> None:
        grid_height, grid_width = self.grid_size(pixel_values)
        length = visible_indices.shape[1] if visible_indices is not None else grid_height * grid_width
        check_token_flags(
            "dropped_positions", dropped_positions, (pixel_values.shape[0], length),
            self.embeddings.position_mask_token, "use_position_mask_token", "MMFMVisionForPreTraining (DropPos)",
        )  # fmt: skip

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        visible_indices: torch.LongTensor | None = None,
        dropped_positions: torch.BoolTensor | None = None,
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


@dataclass
class MMFMVisionForPreTrainingOutput(ModelOutput):
    r"""Output of [`MMFMVisionForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): the objective's loss (equal to `mae_loss` or `droppos_loss`).
        mae_loss (`torch.FloatTensor` of shape `()`, *optional*): MAE: mean squared error on removed patches.
        droppos_loss (`torch.FloatTensor` of shape `()`, *optional*): DropPos: position cross-entropy on the
            visible patches whose position was dropped.
        logits (`torch.FloatTensor`): MAE: `(B, L, p * p * C)` reconstructed patches (normalised like the
            targets when `norm_pix_loss`); DropPos: `(B, L_visible, L)` position scores.
        mask (`torch.BoolTensor` of shape `(B, L)`): True for patches removed before the encoder.
        visible_indices (`torch.LongTensor` of shape `(B, L_visible)`): the encoded patches.
        dropped_positions (`torch.BoolTensor` of shape `(B, L_visible)`, *optional*): DropPos: visible patches
            whose position was replaced by the mask token.
        position_accuracy (`torch.FloatTensor` of shape `()`, *optional*): DropPos: exact-position accuracy on
            the dropped positions.
    """

    loss: torch.FloatTensor | None = None
    mae_loss: torch.FloatTensor | None = None
    droppos_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    visible_indices: torch.LongTensor | None = None
    dropped_positions: torch.BoolTensor | None = None
    position_accuracy: torch.FloatTensor | None = None


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


def position_smoothing_targets(positions: torch.Tensor, grid: tuple[int, int], sigma: float) -> torch.Tensor:
    """DropPos soft targets: for (N,) true positions on a (rows, columns) grid, (N, rows * columns)
    distributions proportional to exp(-d^2 / sigma^2) of the grid distance d; one-hot when sigma is 0."""
    rows, columns = grid
    if sigma <= 0:
        return nn.functional.one_hot(positions, rows * columns).float()
    cells = torch.arange(rows * columns, device=positions.device)
    d_row = (positions[:, None] // columns - cells[None, :] // columns).float()
    d_col = (positions[:, None] % columns - cells[None, :] % columns).float()
    weights = torch.exp(-(d_row**2 + d_col**2) / sigma**2)
    return weights / weights.sum(dim=-1, keepdim=True)


class MMFMVisionForPreTraining(MMFMVisionPreTrainedModel):
    """The vision encoder with the pretraining heads of `config.pretraining_objective`:

    - `"mae"` (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners"): remove `mask_ratio`
      of the patches, encode the visible ones only, and let a light decoder with mask tokens and fixed 2-D
      sine-cosine positions reconstruct the (per-patch normalised) pixels of the removed ones.
    - `"droppos"` (Wang et al., 2023, "DropPos: Pre-Training Vision Transformers by Reconstructing
      Dropped Positions"): remove `mask_ratio` of the patches, replace the position of `position_drop_ratio`
      of the visible ones by a learned mask position, and classify the true position of those among all
      positions, with position smoothing. (The paper's attentive reconstruction is not implemented.)

    Randomness comes from `noise` arguments (uniform (B, L) tensors) or the global generator, so a batch is
    reproducible from a seed.
    """

    _auto_class = "AutoModelForPreTraining"

    def __init__(self, config: MMFMVisionConfig):
        super().__init__(config)
        self.encoder = MMFMVisionModel(
            config, use_position_mask_token=config.pretraining_objective == "droppos"
        )
        self.decoder_embed = nn.Linear(config.hidden_size, config.decoder_hidden_size)
        self.decoder = MMFMTransformer(decoder_config(config))
        if config.pretraining_objective == "mae":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
            self.decoder_pred = nn.Linear(
                config.decoder_hidden_size, config.patch_size**2 * config.num_channels
            )
        else:
            self.position_head = nn.Linear(config.decoder_hidden_size, config.num_patches)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMVisionForPreTraining) and getattr(module, "mask_token", None) is not None:
            init.normal_(module.mask_token, std=self.config.initializer_range)

    def forward(
        self,
        pixel_values: torch.FloatTensor,
        noise: torch.FloatTensor | None = None,
        position_noise: torch.FloatTensor | None = None,
        position_smoothing_sigma: float | None = None,
        **kwargs,
    ) -> MMFMVisionForPreTrainingOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`).
            noise (`torch.FloatTensor` of shape `(B, L)`, *optional*): uniform noise; the patches with the
                smallest values stay visible. Drawn from the global generator when not given.
            position_noise (`torch.FloatTensor` of shape `(B, L_visible)`, *optional*): DropPos: the same for
                choosing the visible patches whose position is dropped.
            position_smoothing_sigma (`float`, *optional*): DropPos: overrides `config.position_smoothing_sigma`
                (the paper decays it from 1 to 0 over training).
        """
        self.encoder._check_inputs(pixel_values, None)
        grid = self.encoder.grid_size(pixel_values)
        num_patches = grid[0] * grid[1]
        visible, mask, restore = random_masking(
            pixel_values.shape[0], num_patches, self.config.mask_ratio, pixel_values.device, noise=noise
        )
        if self.config.pretraining_objective == "mae":
            return self._mae(pixel_values, grid, visible, mask, restore)
        return self._droppos(pixel_values, grid, visible, mask, position_noise, position_smoothing_sigma)

    def _mae(self, pixel_values, grid, visible, mask, restore) -> MMFMVisionForPreTrainingOutput:
        encoded = self.encoder(pixel_values, visible_indices=visible).last_hidden_state
        tokens = self.decoder_embed(encoded)  # (B, 1 + L_visible, D_dec)
        batch, num_patches = mask.shape
        mask_tokens = self.mask_token.to(tokens.dtype).expand(batch, num_patches - visible.shape[1], -1)
        patch_tokens = torch.cat([tokens[:, 1:], mask_tokens], dim=1)
        patch_tokens = torch.gather(patch_tokens, 1, restore.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        positions = sincos_embedding_2d(*grid, self.config.decoder_hidden_size, device=tokens.device)
        patch_tokens = patch_tokens + positions.to(tokens.dtype)
        decoded, _, _ = self.decoder(torch.cat([tokens[:, :1], patch_tokens], dim=1))
        prediction = self.decoder_pred(decoded[:, 1:])  # (B, L, p * p * C)
        target = patchify(pixel_values.to(prediction.dtype), self.config.patch_size)
        if self.config.norm_pix_loss:
            target = normalize_patch_targets(target)
        loss = masked_mse(prediction.float(), target.float(), mask)
        return MMFMVisionForPreTrainingOutput(
            loss=loss, mae_loss=loss, logits=prediction, mask=mask, visible_indices=visible
        )

    def _droppos(
        self, pixel_values, grid, visible, mask, position_noise, sigma
    ) -> MMFMVisionForPreTrainingOutput:
        if grid[0] * grid[1] != self.config.num_patches:
            raise ValueError(
                f"DropPos classifies among the {self.config.num_patches} positions of image_size="
                f"{self.config.image_size}; got {pixel_values.shape[-2]}x{pixel_values.shape[-1]} images. "
                "Resize them to image_size."
            )
        batch, num_visible = visible.shape
        _, dropped, _ = random_masking(
            batch, num_visible, self.config.position_drop_ratio, pixel_values.device, noise=position_noise
        )
        encoded = self.encoder(
            pixel_values, visible_indices=visible, dropped_positions=dropped
        ).last_hidden_state
        decoded, _, _ = self.decoder(self.decoder_embed(encoded))
        logits = self.position_head(decoded[:, 1:])  # (B, L_visible, L)
        sigma = self.config.position_smoothing_sigma if sigma is None else sigma
        targets = position_smoothing_targets(visible[dropped], grid, sigma)
        loss = soft_cross_entropy(logits[dropped], targets)
        accuracy = (logits[dropped].argmax(dim=-1) == visible[dropped]).float().mean()
        return MMFMVisionForPreTrainingOutput(
            loss=loss,
            droppos_loss=loss,
            logits=logits,
            mask=mask,
            visible_indices=visible,
            dropped_positions=dropped,
            position_accuracy=accuracy,
        )


__all__ = [
    "MMFMVisionForPreTraining",
    "MMFMVisionForPreTrainingOutput",
    "MMFMVisionModel",
    "MMFMVisionModelOutput",
    "MMFMVisionPreTrainedModel",
    "patchify",
    "unpatchify",
]
