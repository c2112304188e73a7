"""SSAST (Gong et al., 2022, "SSAST: Self-Supervised Audio Spectrogram Transformer") on the mmfm audio
encoder: joint discriminative and generative masked spectrogram patch modeling.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_audio import MMFMAudioConfig
from .configuration_mmfm_common import MMFMObjectiveConfig, require_open_fraction
from .mmfm_layers import check_tensor
from .mmfm_losses import info_nce, masked_mse
from .mmfm_masking import random_masking_with_padding
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_audio import (
    MMFMAudioModel,
    MMFMAudioPreTrainedModel,
    pad_to_patches,
    patch_validity,
    patchify_spectrogram,
)


@dataclass
class SSASTConfig(MMFMObjectiveConfig):
    """SSAST's hyperparameters (`pretraining_config` of an SSAST model).

    Args:
        mask_ratio: fraction of each clip's real patches that are masked (the paper masks 400 of 512 patches
            of a 10 s clip, about 0.78; 0.75 here).
        generative_loss_weight: the paper's lambda, the weight of the reconstruction loss (10).

    Departure: SSAST's cluster masking is not implemented; patches are masked independently.
    """

    mask_ratio: float = 0.75
    generative_loss_weight: float = 10.0

    def check(self) -> None:
        require_open_fraction(self, "mask_ratio")
        if self.generative_loss_weight < 0:
            raise ValueError(
                f"SSASTConfig.generative_loss_weight must be >= 0, got {self.generative_loss_weight}."
            )


@dataclass
class MMFMAudioSSASTOutput(ModelOutput):
    r"""Output of [`MMFMAudioForSSAST`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): `discriminative_loss + generative_loss_weight * generative_loss`.
        discriminative_loss (`torch.FloatTensor` of shape `()`): InfoNCE over each clip's masked patches.
        generative_loss (`torch.FloatTensor` of shape `()`): MSE reconstruction of the masked patches.
        discriminative_accuracy (`torch.FloatTensor` of shape `()`): how often a masked patch's prediction
            picks its own patch among the clip's masked patches.
        reconstruction (`torch.FloatTensor` of shape `(B, T_p * F_p, patch_time * patch_frequency)`).
        masked_patches (`torch.BoolTensor` of shape `(B, T_p * F_p)`).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, 1 + T_p * F_p, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer (eager attention).
    """

    loss: torch.FloatTensor | None = None
    discriminative_loss: torch.FloatTensor | None = None
    generative_loss: torch.FloatTensor | None = None
    discriminative_accuracy: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    masked_patches: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMAudioPredictionHead(nn.Module):
    """SSAST's two-layer prediction head: (B, L, D) -> (B, L, patch_time * patch_frequency)."""

    def __init__(self, config: MMFMAudioConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(config.hidden_size, config.patch_time_size * config.patch_frequency_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class MMFMAudioForSSAST(MMFMPreTrainingMixin, MMFMAudioPreTrainedModel):
    """The audio encoder with SSAST's heads: `mask_ratio` of each clip's real patches get the mask
    embedding; from their output tokens one head must pick each patch among the clip's masked patches
    (InfoNCE) and another reconstructs it (MSE); the loss is the discriminative one plus
    `generative_loss_weight` times the generative one. Padding patches are never masked nor scored."""

    objective_name = "ssast"
    objective_config_class = SSASTConfig

    def __init__(self, config: MMFMAudioConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMAudioModel(config, use_mask_token=True)
        self.discriminative_head = MMFMAudioPredictionHead(config)
        self.generative_head = MMFMAudioPredictionHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_features: torch.FloatTensor,
        attention_mask: torch.Tensor | None = None,
        noise: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMAudioSSASTOutput:
        r"""
        Args:
            input_features, attention_mask: as for [`MMFMAudioModel`].
            noise (`torch.FloatTensor` of shape `(B, T_p * F_p)`, *optional*): uniform noise; the real patches
                with the smallest values are masked. Drawn from the global generator if None.
        """
        frame_mask = self.encoder._check_inputs(input_features, attention_mask)
        if noise is not None:
            check_tensor("noise", noise, "(batch_size, num_patches)", 2, "float", self.encoder.input_device())
        features, padded_mask = pad_to_patches(
            input_features.float(), frame_mask, self.config.patch_time_size
        )
        valid = patch_validity(padded_mask, self.config)
        masked = random_masking_with_padding(valid, self.objective.mask_ratio, noise=noise)
        encoded = self.encoder(
            input_features, attention_mask, masked_patches=masked, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        hidden = encoded.last_hidden_state[:, 1:]
        targets = patchify_spectrogram(features, self.config)
        discriminative, accuracy = info_nce(self.discriminative_head(hidden), targets, masked)
        reconstruction = self.generative_head(hidden)
        generative = masked_mse(reconstruction.float(), targets, masked)
        return MMFMAudioSSASTOutput(
            loss=discriminative + self.objective.generative_loss_weight * generative,
            discriminative_loss=discriminative, generative_loss=generative, discriminative_accuracy=accuracy,
            reconstruction=reconstruction, masked_patches=masked, hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )  # fmt: skip


__all__ = ["MMFMAudioForSSAST", "MMFMAudioPredictionHead", "MMFMAudioSSASTOutput", "SSASTConfig"]
