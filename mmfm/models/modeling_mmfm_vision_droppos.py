"""DropPos (Wang et al., 2023, "DropPos: Pre-Training Vision Transformers by Reconstructing Dropped
Positions") on the mmfm vision encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig, check_decoder_sizes, require_open_fraction
from .configuration_mmfm_vision import MMFMVisionConfig
from .mmfm_layers import MMFMTransformer, check_tensor, decoder_config
from .mmfm_losses import soft_cross_entropy
from .mmfm_masking import random_masking
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_vision import MMFMVisionModel, MMFMVisionPreTrainedModel


@dataclass
class DropPosConfig(MMFMObjectiveConfig):
    """DropPos's hyperparameters (`pretraining_config` of a DropPos model).

    Args:
        mask_ratio: fraction of patches removed before the encoder (0.75 in the paper).
        position_drop_ratio: fraction of the visible patches whose position is replaced by the learned
            position mask token (0.75 in the paper).
        position_smoothing_sigma: the largest sigma of position smoothing: soft targets exp(-d^2 / sigma^2)
            over the patch-grid distance d. As in the authors' code (`--sigma_decay`), the training recipe
            decays sigma linearly from this value to 0 over the run (per step there, per epoch in the
            reference); a direct `forward` call uses this value unless `position_smoothing_sigma` is given.
            0 gives one-hot targets. Rows of the target are normalised to sum to 1 (the reference divides by
            column sums, which for this symmetric kernel leaves border rows slightly off 1).
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads,
        decoder_intermediate_size: the transformer decoder (without positions) before the position classifier.

    Departure: the paper's attentive reconstruction (`--attn_guide`) is not implemented.
    """

    presets: ClassVar[dict] = {
        "tiny": {"decoder_hidden_size": 32, "decoder_num_hidden_layers": 1, "decoder_num_attention_heads": 4,
                 "decoder_intermediate_size": 64},
        "small": {"decoder_hidden_size": 256, "decoder_num_hidden_layers": 4, "decoder_num_attention_heads": 8,
                  "decoder_intermediate_size": 1024},
    }  # fmt: skip

    mask_ratio: float = 0.75
    position_drop_ratio: float = 0.75
    position_smoothing_sigma: float = 1.0
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048

    def check(self) -> None:
        require_open_fraction(self, "mask_ratio", "position_drop_ratio")
        check_decoder_sizes(self)
        if self.position_smoothing_sigma < 0:
            raise ValueError(
                f"DropPosConfig.position_smoothing_sigma must be >= 0, got {self.position_smoothing_sigma}."
            )


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


@dataclass
class MMFMVisionDropPosOutput(ModelOutput):
    r"""Output of [`MMFMVisionForDropPos`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): position cross-entropy on the visible patches whose position
            was dropped.
        logits (`torch.FloatTensor` of shape `(B, L_visible, L)`): position scores of every visible patch.
        mask (`torch.BoolTensor` of shape `(B, L)`): True for patches removed before the encoder.
        visible_indices (`torch.LongTensor` of shape `(B, L_visible)`): the encoded patches.
        dropped_positions (`torch.BoolTensor` of shape `(B, L_visible)`): visible patches whose position was
            replaced by the mask token.
        position_accuracy (`torch.FloatTensor` of shape `()`): exact-position accuracy on the dropped ones.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, 1 + L_visible, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    visible_indices: torch.LongTensor | None = None
    dropped_positions: torch.BoolTensor | None = None
    position_accuracy: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMVisionForDropPos(MMFMPreTrainingMixin, MMFMVisionPreTrainedModel):
    """The vision encoder with DropPos's heads: remove `mask_ratio` of the patches, replace the position of
    `position_drop_ratio` of the visible ones by a learned mask position, and classify the true position
    of those among all positions, with position smoothing.

    Randomness comes from `noise` / `position_noise` (uniform) or the global generator.
    """

    objective_name = "droppos"
    objective_config_class = DropPosConfig

    def __init__(self, config: MMFMVisionConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMVisionModel(config, use_position_mask_token=True)
        self.decoder_embed = nn.Linear(config.hidden_size, self.objective.decoder_hidden_size)
        self.decoder = MMFMTransformer(decoder_config(config, self.objective))
        self.position_head = nn.Linear(self.objective.decoder_hidden_size, config.num_patches)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.FloatTensor,
        noise: torch.FloatTensor | None = None,
        position_noise: torch.FloatTensor | None = None,
        position_smoothing_sigma: float | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMVisionDropPosOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, C, H, W)`), H = W = `image_size`.
            noise (`torch.FloatTensor` of shape `(B, L)`, *optional*): uniform noise; the patches with the
                smallest values stay visible.
            position_noise (`torch.FloatTensor` of shape `(B, L_visible)`, *optional*): the same for choosing
                the visible patches whose position is dropped.
            position_smoothing_sigma (`float`, *optional*): this step's sigma (the recipe decays it from
                `pretraining_config.position_smoothing_sigma` to 0); defaults to that value.
        """
        self.encoder._check_inputs(pixel_values, None)
        for name, value, layout in (
            ("noise", noise, "(batch_size, num_patches)"),
            ("position_noise", position_noise, "(batch_size, num_visible_patches)"),
        ):
            if value is not None:
                check_tensor(name, value, layout, 2, "float", self.encoder.input_device())
        grid = self.encoder.grid_size(pixel_values)
        if grid[0] * grid[1] != self.config.num_patches:
            raise ValueError(
                f"DropPos classifies among the {self.config.num_patches} positions of image_size="
                f"{self.config.image_size}; got {pixel_values.shape[-2]}x{pixel_values.shape[-1]} images. "
                "Resize them to image_size."
            )
        batch = pixel_values.shape[0]
        visible, mask, _ = random_masking(
            batch, self.config.num_patches, self.objective.mask_ratio, pixel_values.device, noise=noise
        )
        if position_noise is not None and tuple(position_noise.shape) != (batch, visible.shape[1]):
            raise ValueError(
                f"`position_noise` must have shape ({batch}, {visible.shape[1]}) (one value per visible patch), "
                f"got {tuple(position_noise.shape)}."
            )
        _, dropped, _ = random_masking(
            batch,
            visible.shape[1],
            self.objective.position_drop_ratio,
            pixel_values.device,
            noise=position_noise,
        )
        encoded = self.encoder(
            pixel_values, visible_indices=visible, dropped_positions=dropped,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        decoded, _, _ = self.decoder(
            self.decoder_embed(encoded.last_hidden_state), output_hidden_states=False, output_attentions=False
        )
        logits = self.position_head(decoded[:, 1:])  # (B, L_visible, L)
        sigma = (
            self.objective.position_smoothing_sigma
            if position_smoothing_sigma is None
            else position_smoothing_sigma
        )
        targets = position_smoothing_targets(visible[dropped], grid, float(sigma))
        loss = soft_cross_entropy(logits[dropped], targets)
        accuracy = (logits[dropped].argmax(dim=-1) == visible[dropped]).float().mean()
        return MMFMVisionDropPosOutput(
            loss=loss, logits=logits, mask=mask, visible_indices=visible,
            dropped_positions=dropped, position_accuracy=accuracy, hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )  # fmt: skip


__all__ = ["DropPosConfig", "MMFMVisionDropPosOutput", "MMFMVisionForDropPos", "position_smoothing_targets"]
