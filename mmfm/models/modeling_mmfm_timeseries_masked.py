"""Masked patch reconstruction (PatchTST's self-supervised pretraining: Nie et al., 2023, "A Time Series is
Worth 64 Words") on the mmfm time-series encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig, require_open_fraction
from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .mmfm_layers import check_tensor
from .mmfm_losses import masked_mse
from .mmfm_masking import random_masking_with_padding
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_timeseries import (
    MMFMTimeSeriesModel,
    MMFMTimeSeriesPreTrainedModel,
    patch_steps,
    patch_values,
)


@dataclass
class MaskedPatchConfig(MMFMObjectiveConfig):
    """Hyperparameters of masked patch reconstruction (`pretraining_config`).

    Args:
        mask_ratio: fraction of each channel's patches that hold an observed value to mask (PatchTST: 0.4).
        keep_masked_tokens: True (PatchTST): masked patches stay tokens with zeroed values that attend and
            are attended, so the encoder sees where the gaps are. False: they are removed from attention like
            missing values (mmfm's earlier behaviour; cheaper attention, and no token ever holds no data).

    Departures: masked values are left out of the instance normalisation's statistics (PatchTST scales
    before masking, so the removed values still shift the mean and scale the encoder sees); padding patches
    are never masked nor scored.
    """

    mask_ratio: float = 0.4
    keep_masked_tokens: bool = True

    def check(self) -> None:
        require_open_fraction(self, "mask_ratio")


@dataclass
class MMFMTimeSeriesMaskedPatchOutput(ModelOutput):
    r"""Output of [`MMFMTimeSeriesForMaskedPatchModeling`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): MSE on the observed values of masked patches.
        prediction (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): reconstructed patches, in
            normalised units (`prediction * scale + loc` maps them back).
        target (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): the patches in normalised units.
        mask (`torch.BoolTensor` of shape `(B, C, P)`): masked patches.
        loc, scale (`torch.FloatTensor` of shape `(B, 1, C)`): the instance normalisation.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, C, P, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer `(B * C, H, P, P)`.
    """

    loss: torch.FloatTensor | None = None
    prediction: torch.FloatTensor | None = None
    target: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    loc: torch.FloatTensor | None = None
    scale: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def check_non_overlapping(model_name: str, config: MMFMTimeSeriesConfig) -> None:
    """`ValueError` unless patches do not overlap (a masked or future patch would leak through neighbours)."""
    if config.patch_stride != config.patch_length:
        raise ValueError(
            f"{model_name} needs non-overlapping patches: patch_stride ({config.patch_stride}) must equal "
            f"patch_length ({config.patch_length}), or masked and future values would be visible through "
            "overlapping neighbours."
        )


class MMFMTimeSeriesForMaskedPatchModeling(MMFMPreTrainingMixin, MMFMTimeSeriesPreTrainedModel):
    """The time-series encoder with a linear patch head: mask `mask_ratio` of each channel's patches that
    hold an observed value, encode, and reconstruct them; the loss is on observed values only."""

    objective_name = "ts_masked"
    objective_config_class = MaskedPatchConfig

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__(config)
        check_non_overlapping(type(self).__name__, config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMTimeSeriesModel(config)
        self.head = nn.Linear(config.hidden_size, config.patch_length)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        noise: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTimeSeriesMaskedPatchOutput:
        r"""
        Args:
            past_values (`torch.FloatTensor` of shape `(B, L, C)`), past_observed_mask (same shape, optional):
                as for [`MMFMTimeSeriesModel`].
            noise (`torch.FloatTensor` of shape `(B, C, P)`, *optional*): uniform noise whose smallest values
                (among patches with an observed value) mark the masked patches of each channel.
        """
        observed = self.encoder._check_inputs(past_values, past_observed_mask)
        batch, _, channels = past_values.shape
        patches = self.config.num_patches
        if noise is not None:
            check_tensor(
                "noise", noise, "(batch_size, num_channels, num_patches)", 3, "float", past_values.device
            )
        if noise is not None and tuple(noise.shape) != (batch, channels, patches):
            raise ValueError(
                f"`noise` must have shape ({batch}, {channels}, {patches}), got {tuple(noise.shape)}."
            )
        length = self.config.patch_length
        # Only patches holding an observed value are candidates (padding is never a target), and each
        # channel keeps at least one of them visible.
        valid = patch_values(observed, length).any(dim=-1).reshape(batch * channels, patches).bool()
        flat_noise = None if noise is None else noise.reshape(batch * channels, patches)
        mask = random_masking_with_padding(valid, self.objective.mask_ratio, noise=flat_noise)
        mask = mask.view(batch, channels, patches)
        if self.objective.keep_masked_tokens:
            inputs = {"past_observed_mask": observed, "masked_patches": mask}
        else:
            inputs = {"past_observed_mask": observed * (~patch_steps(mask, length)).to(observed.dtype)}
        output = self.encoder(
            past_values,
            **inputs,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        target = patch_values((past_values.float() - output.loc) / output.scale, length)
        prediction = self.head(output.last_hidden_state)  # (B, C, P, patch_length)
        scored = patch_values(observed, length) * mask.unsqueeze(-1)
        loss = masked_mse(prediction.float(), target, scored.bool())
        return MMFMTimeSeriesMaskedPatchOutput(
            loss=loss, prediction=prediction, target=target, mask=mask, loc=output.loc,
            scale=output.scale, hidden_states=output.hidden_states, attentions=output.attentions,
        )  # fmt: skip


__all__ = [
    "MMFMTimeSeriesForMaskedPatchModeling",
    "MMFMTimeSeriesMaskedPatchOutput",
    "MaskedPatchConfig",
    "check_non_overlapping",
]
