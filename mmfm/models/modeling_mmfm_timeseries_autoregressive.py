"""Next-patch prediction (GPHT-style generative pretraining: Liu et al., 2024, "Generative Pretrained
Hierarchical Transformer for Time Series Forecasting") on the causal mmfm time-series encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig
from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .mmfm_losses import masked_mse
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_timeseries import MMFMTimeSeriesModel, MMFMTimeSeriesPreTrainedModel, patch_values
from .modeling_mmfm_timeseries_masked import check_non_overlapping


@dataclass
class NextPatchConfig(MMFMObjectiveConfig):
    """Next-patch prediction has no hyperparameters of its own (it needs `is_causal=True` on the encoder).

    Departures: GPHT's hierarchy (several resolutions) is not implemented. The instance normalisation
    statistics cover the whole window, as in GPHT, so a mean and a scale per channel are the only
    information that flows from later patches to earlier predictions.
    """


@dataclass
class MMFMTimeSeriesNextPatchOutput(ModelOutput):
    r"""Output of [`MMFMTimeSeriesForNextPatchPrediction`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): MSE of each next-patch prediction on the observed values of
            that next patch.
        prediction (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): per patch token, the predicted
            next patch, in normalised units.
        target (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): the patches in normalised units.
        loc, scale (`torch.FloatTensor` of shape `(B, 1, C)`): the instance normalisation.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, C, P, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer `(B * C, H, P, P)`.
    """

    loss: torch.FloatTensor | None = None
    prediction: torch.FloatTensor | None = None
    target: torch.FloatTensor | None = None
    loc: torch.FloatTensor | None = None
    scale: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMTimeSeriesForNextPatchPrediction(MMFMPreTrainingMixin, MMFMTimeSeriesPreTrainedModel):
    """The causal time-series encoder with a linear patch head: every patch token predicts the next patch;
    `forecast` rolls this forward and reverses the instance normalisation."""

    objective_name = "ts_autoregressive"
    objective_config_class = NextPatchConfig
    encoder_requirements: ClassVar[dict] = {"is_causal": True}

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
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTimeSeriesNextPatchOutput:
        r"""
        Args:
            past_values (`torch.FloatTensor` of shape `(B, L, C)`), past_observed_mask (same shape, optional):
                as for [`MMFMTimeSeriesModel`].
        """
        observed = self.encoder._check_inputs(past_values, past_observed_mask)
        output = self.encoder(
            past_values,
            observed,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        length = self.config.patch_length
        target = patch_values((past_values.float() - output.loc) / output.scale, length)
        prediction = self.head(output.last_hidden_state)
        scored = patch_values(observed, length)[:, :, 1:].bool()
        loss = masked_mse(prediction[:, :, :-1].float(), target[:, :, 1:], scored)
        return MMFMTimeSeriesNextPatchOutput(
            loss=loss, prediction=prediction, target=target, loc=output.loc,
            scale=output.scale, hidden_states=output.hidden_states, attentions=output.attentions,
        )  # fmt: skip

    @torch.no_grad()
    def forecast(
        self, past_values: torch.FloatTensor, past_observed_mask: torch.Tensor | None = None, horizon: int = 1
    ) -> torch.FloatTensor:
        """Autoregressive forecast of the next `horizon` steps (B, horizon, C), in the input's units: each
        step predicts one patch from the last `context_length` steps and slides the window forward."""
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"`horizon` must be a positive integer, got {horizon!r}.")
        observed = self.encoder._check_inputs(past_values, past_observed_mask).float()
        values = past_values.float()
        length = self.config.patch_length
        produced = []
        while sum(p.shape[1] for p in produced) < horizon:
            output = self.encoder(values, observed, return_dict=True)
            step = self.head(output.last_hidden_state[:, :, -1]).float()  # (B, C, patch_length), normalised
            step = (step * output.scale.transpose(1, 2) + output.loc.transpose(1, 2)).transpose(1, 2)
            produced.append(step)
            values = torch.cat([values[:, length:], step], dim=1)
            observed = torch.cat([observed[:, length:], torch.ones_like(step)], dim=1)
        return torch.cat(produced, dim=1)[:, :horizon]


__all__ = ["MMFMTimeSeriesForNextPatchPrediction", "MMFMTimeSeriesNextPatchOutput", "NextPatchConfig"]
