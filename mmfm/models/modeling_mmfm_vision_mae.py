"""MAE (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners") on the mmfm vision encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig, check_decoder_sizes, require_open_fraction
from .configuration_mmfm_vision import MMFMVisionConfig
from .mmfm_layers import MMFMTransformer, check_tensor, decoder_config, sincos_embedding_2d
from .mmfm_losses import masked_mse, normalize_patch_targets
from .mmfm_masking import random_masking
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_vision import MMFMVisionModel, MMFMVisionPreTrainedModel, patchify


@dataclass
class MAEConfig(MMFMObjectiveConfig):
    """MAE's hyperparameters (`pretraining_config` of an MAE model).

    Args:
        mask_ratio: fraction of patches removed before the encoder (0.75 in the paper).
        norm_pix_loss: targets are per-patch normalised pixels (the paper's better variant).
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads,
        decoder_intermediate_size: the light pre-norm transformer decoder (paper: 512 wide, 8 blocks,
            16 heads, MLP 2048).
    """

    presets: ClassVar[dict] = {
        "tiny": {"decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4,
                 "decoder_intermediate_size": 64},
        "small": {"decoder_hidden_size": 256, "decoder_num_hidden_layers": 4, "decoder_num_attention_heads": 8,
                  "decoder_intermediate_size": 1024},
    }  # fmt: skip

    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048

    def check(self) -> None:
        require_open_fraction(self, "mask_ratio")
        check_decoder_sizes(self)
        if self.decoder_hidden_size % 4:
            raise ValueError(
                f"MAEConfig.decoder_hidden_size must be divisible by 4 (2-D sine-cosine decoder positions), got "
                f"{self.decoder_hidden_size}."
            )


@dataclass
class MMFMVisionMAEOutput(ModelOutput):
    r"""Output of [`MMFMVisionForMAE`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): mean squared error on the removed patches.
        logits (`torch.FloatTensor` of shape `(B, L, p * p * C)`): reconstructed patches (normalised like the
            targets when `norm_pix_loss`).
        mask (`torch.BoolTensor` of shape `(B, L)`): True for patches removed before the encoder.
        visible_indices (`torch.LongTensor` of shape `(B, L_visible)`): the encoded patches.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, 1 + L_visible, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer
            `(B, H, 1 + L_visible, 1 + L_visible)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    visible_indices: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMVisionForMAE(MMFMPreTrainingMixin, MMFMVisionPreTrainedModel):
    """The vision encoder with MAE's decoder: remove `mask_ratio` of the patches, encode the visible ones
    only, and let a light decoder with mask tokens and fixed 2-D sine-cosine positions reconstruct the
    (per-patch normalised) pixels of the removed ones.

    Randomness comes from `noise` (uniform (B, L)) or the global generator, so a batch is reproducible.
    """

    objective_name = "mae"
    objective_config_class = MAEConfig

    def __init__(self, config: MMFMVisionConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMVisionModel(config)
        self.decoder_embed = nn.Linear(config.hidden_size, self.objective.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.objective.decoder_hidden_size))
        self.decoder = MMFMTransformer(decoder_config(config, self.objective))
        self.decoder_pred = nn.Linear(
            self.objective.decoder_hidden_size, config.patch_size**2 * config.num_channels
        )
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMVisionForMAE):
            init.normal_(module.mask_token, std=self.config.initializer_range)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        noise: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMVisionMAEOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`).
            noise (`torch.FloatTensor` of shape `(B, L)`, *optional*): uniform noise; the patches with the
                smallest values stay visible. Drawn from the global generator when not given.
        """
        self.encoder._check_inputs(pixel_values, None)
        if noise is not None:
            check_tensor("noise", noise, "(batch_size, num_patches)", 2, "float", self.encoder.input_device())
        grid = self.encoder.grid_size(pixel_values)
        visible, mask, restore = random_masking(
            pixel_values.shape[0],
            grid[0] * grid[1],
            self.objective.mask_ratio,
            pixel_values.device,
            noise=noise,
        )
        encoded = self.encoder(
            pixel_values, visible_indices=visible, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        tokens = self.decoder_embed(encoded.last_hidden_state)  # (B, 1 + L_visible, D_dec)
        batch, num_patches = mask.shape
        mask_tokens = self.mask_token.to(tokens.dtype).expand(batch, num_patches - visible.shape[1], -1)
        patch_tokens = torch.cat([tokens[:, 1:], mask_tokens], dim=1)
        patch_tokens = torch.gather(patch_tokens, 1, restore.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        positions = sincos_embedding_2d(*grid, self.objective.decoder_hidden_size, device=tokens.device)
        patch_tokens = patch_tokens + positions.to(tokens.dtype)
        decoded, _, _ = self.decoder(
            torch.cat([tokens[:, :1], patch_tokens], dim=1),
            output_hidden_states=False,
            output_attentions=False,
        )
        prediction = self.decoder_pred(decoded[:, 1:])  # (B, L, p * p * C)
        target = patchify(pixel_values.to(prediction.dtype), self.config.patch_size)
        if self.objective.norm_pix_loss:
            target = normalize_patch_targets(target)
        loss = masked_mse(prediction.float(), target.float(), mask)
        return MMFMVisionMAEOutput(
            loss=loss, logits=prediction, mask=mask, visible_indices=visible,
            hidden_states=encoded.hidden_states, attentions=encoded.attentions,
        )  # fmt: skip


__all__ = ["MAEConfig", "MMFMVisionForMAE", "MMFMVisionMAEOutput"]
