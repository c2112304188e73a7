"""mmfm time-series encoder: reversible instance normalisation, channel-independent patching with a
missing-value mask, and a transformer over patches (PatchTST-style).

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .mmfm_layers import MMFMEncoderPreTrainedModel, MMFMTransformer, check_finite, check_rank, masked_mean
from .mmfm_losses import masked_mse
from .mmfm_masking import random_masking_with_padding


@dataclass
class MMFMTimeSeriesModelOutput(ModelOutput):
    r"""Output of [`MMFMTimeSeriesModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, C, P, D)`): one token per channel and patch.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): series embedding, the mean over channels of
            each channel's mean over its observed patches.
        patch_mask (`torch.LongTensor` of shape `(B, C, P)`): 1 for patches holding an observed value.
        loc (`torch.FloatTensor` of shape `(B, 1, C)`): per-channel shift removed by instance normalisation.
        scale (`torch.FloatTensor` of shape `(B, 1, C)`): per-channel scale removed by instance normalisation;
            a forecast `y` in normalised units maps back as `y * scale + loc`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, C, P, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B * C, H, P, P)` (eager).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    patch_mask: torch.LongTensor | None = None
    loc: torch.FloatTensor | None = None
    scale: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMInstanceNorm(nn.Module):
    """Reversible instance normalisation (RevIN) over observed values only."""

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__()
        self.config = config
        if config.revin_affine:
            self.affine_weight = nn.Parameter(torch.ones(config.num_input_channels))
            self.affine_bias = nn.Parameter(torch.zeros(config.num_input_channels))

    def forward(
        self, values: torch.Tensor, observed: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, C) values and (B, L, C) 0/1 `observed` -> normalised values (missing set to 0),
        loc (B, 1, C) and scale (B, 1, C)."""
        count = observed.sum(dim=1, keepdim=True).clamp(min=1.0)
        if self.config.scaling == "std":
            loc = (values * observed).sum(dim=1, keepdim=True) / count
            variance = (((values - loc) * observed) ** 2).sum(dim=1, keepdim=True) / count
            scale = torch.sqrt(variance + self.config.minimum_scale)
        elif self.config.scaling == "mean":
            loc = torch.zeros_like(count)
            scale = ((values.abs() * observed).sum(dim=1, keepdim=True) / count).clamp(
                min=self.config.minimum_scale
            )
        else:
            loc, scale = torch.zeros_like(count), torch.ones_like(count)
        normalised = (values - loc) / scale
        if self.config.revin_affine:
            normalised = normalised * self.affine_weight + self.affine_bias
        return normalised * observed, loc, scale


class MMFMTimeSeriesEmbeddings(nn.Module):
    """Cut each channel into patches and embed values together with their observed mask."""

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__()
        self.config = config
        # Values and mask side by side, so a missing value is distinguishable from an observed zero.
        self.patch_embedding = nn.Linear(2 * config.patch_length, config.hidden_size)
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1, config.num_patches, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, values: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) normalised values and 0/1 mask -> tokens (B, C, P, D) and bool patch mask (B, C, P)."""
        length, stride = self.config.patch_length, self.config.patch_stride
        value_patches = values.transpose(1, 2).unfold(-1, length, stride)  # (B, C, P, patch_length)
        mask_patches = observed.transpose(1, 2).unfold(-1, length, stride)
        inputs = torch.cat([value_patches, mask_patches], dim=-1).to(self.patch_embedding.weight.dtype)
        tokens = self.patch_embedding(inputs) + self.position_embeddings
        return self.dropout(tokens), mask_patches.any(dim=-1)


class MMFMTimeSeriesPreTrainedModel(MMFMEncoderPreTrainedModel):
    config: MMFMTimeSeriesConfig
    config_class = MMFMTimeSeriesConfig
    base_model_prefix = "encoder"
    main_input_name = "past_values"
    input_modalities = ("time",)
    _no_split_modules = ["MMFMLayer", "MMFMTimeSeriesEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMTimeSeriesEmbeddings):
            init.trunc_normal_(module.position_embeddings, std=self.config.initializer_range)
        elif isinstance(module, MMFMInstanceNorm) and module.config.revin_affine:
            init.ones_(module.affine_weight)
            init.zeros_(module.affine_bias)


class MMFMTimeSeriesModel(MMFMTimeSeriesPreTrainedModel):
    """Time-series encoder: `past_values` (B, L, C) -> per-channel patch tokens and an embedding (B, D)."""

    # Loading the encoder from a pretraining checkpoint leaves its head behind, silently.
    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__(config)
        self.normalization = MMFMInstanceNorm(config)
        self.embeddings = MMFMTimeSeriesEmbeddings(config)
        self.transformer = MMFMTransformer(config, is_causal=config.is_causal)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _check_inputs(
        self, past_values: torch.Tensor, past_observed_mask: torch.Tensor | None
    ) -> torch.Tensor:
        check_rank("past_values", past_values, 3, "(batch_size, context_length, num_channels)")
        _, length, channels = past_values.shape
        if length != self.config.context_length:
            raise ValueError(
                f"`past_values` has {length} time steps, the model expects context_length="
                f"{self.config.context_length}; pad or cut series with the time-series processor."
            )
        if channels == 0:
            raise ValueError("`past_values` has 0 channels: an empty series cannot be encoded.")
        expected = self.config.num_input_channels
        if expected is not None and channels != expected:
            raise ValueError(
                f"`past_values` has {channels} channels, the model expects num_input_channels={expected}."
            )
        if past_observed_mask is None:
            observed = torch.ones_like(past_values)
        else:
            if past_observed_mask.shape != past_values.shape:
                raise ValueError(
                    f"`past_observed_mask` must have the shape of `past_values` {tuple(past_values.shape)}, "
                    f"got {tuple(past_observed_mask.shape)}."
                )
            observed = past_observed_mask.to(past_values.dtype)
        if self.config.validate_inputs:
            check_finite("past_values", past_values)
            empty = (observed.sum(dim=1) == 0).nonzero().tolist()
            if empty:
                raise ValueError(
                    f"`past_observed_mask` marks no observed value for (sample, channel) pairs {empty[:5]}; "
                    "drop such series or channels."
                )
        return observed

    def _attention_mask(self, tokens: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor | None:
        """Attention mask for (B', P, D) tokens whose observed patches are marked by (B', P) `patch_mask`."""
        if not self.config.is_causal:
            return create_bidirectional_mask(self.config, tokens, patch_mask.long())
        # Causal: keys up to the query, observed ones only; every patch also sees itself, so a patch
        # with nothing observed before it (left padding, a masked first patch) still has one key.
        patches = patch_mask.shape[1]
        causal = torch.ones(patches, patches, dtype=torch.bool, device=tokens.device).tril()
        diagonal = torch.eye(patches, dtype=torch.bool, device=tokens.device)
        return (causal & (patch_mask[:, None, :] | diagonal)).unsqueeze(1)

    @can_return_tuple
    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMTimeSeriesModelOutput:
        r"""
        Args:
            past_values (`torch.FloatTensor` of shape `(B, L, C)`): L = `context_length`; missing entries
                may hold any finite value (they are masked).
            past_observed_mask (`torch.Tensor` of shape `(B, L, C)`, *optional*): 1 for observed values,
                0 for missing values and padding.
        """
        observed = self._check_inputs(past_values, past_observed_mask)
        normalised, loc, scale = self.normalization(past_values.float(), observed.float())
        tokens, patch_mask = self.embeddings(normalised, observed)
        batch, channels, patches, dim = tokens.shape
        flat_tokens = tokens.reshape(batch * channels, patches, dim)
        flat_mask = patch_mask.reshape(batch * channels, patches)
        mask = self._attention_mask(flat_tokens, flat_mask)
        hidden, all_hidden, attentions = self.transformer(
            flat_tokens,
            mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        pooled = masked_mean(hidden, flat_mask).view(batch, channels, dim).mean(dim=1)
        if all_hidden is not None:
            all_hidden = tuple(h.view(batch, channels, patches, dim) for h in all_hidden)
        return MMFMTimeSeriesModelOutput(
            last_hidden_state=hidden.view(batch, channels, patches, dim),
            pooler_output=pooled,
            patch_mask=patch_mask.long(),
            loc=loc,
            scale=scale,
            hidden_states=all_hidden,
            attentions=attentions,
        )


@dataclass
class MMFMTimeSeriesForPreTrainingOutput(ModelOutput):
    r"""Output of [`MMFMTimeSeriesForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): the objective's loss (`masked_loss` or `autoregressive_loss`).
        masked_loss (`torch.FloatTensor` of shape `()`, *optional*): MSE on the observed values of masked patches.
        autoregressive_loss (`torch.FloatTensor` of shape `()`, *optional*): MSE of each next-patch prediction on
            the observed values of that next patch.
        prediction (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): per token, the reconstructed patch
            (masked) or the predicted next patch (autoregressive), in normalised units.
        target (`torch.FloatTensor` of shape `(B, C, P, patch_length)`): the patches in normalised units.
        mask (`torch.BoolTensor` of shape `(B, C, P)`, *optional*): masked patches (masked objective).
        loc, scale (`torch.FloatTensor` of shape `(B, 1, C)`): the instance normalisation, to map predictions
            back as `prediction * scale + loc`.
    """

    loss: torch.FloatTensor | None = None
    masked_loss: torch.FloatTensor | None = None
    autoregressive_loss: torch.FloatTensor | None = None
    prediction: torch.FloatTensor | None = None
    target: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    loc: torch.FloatTensor | None = None
    scale: torch.FloatTensor | None = None


class MMFMTimeSeriesForPreTraining(MMFMTimeSeriesPreTrainedModel):
    """The time-series encoder with a linear patch head, trained by `config.pretraining_objective`:

    - `"masked"` (Nie et al., 2023, "A Time Series is Worth 64 Words", PatchTST's self-supervised
      pretraining): mask `mask_ratio` of each channel's patches that hold an observed value (values and
      observed flags set to 0, so the instance normalisation never sees them) and reconstruct them; loss
      on observed values only; padding patches are never masked nor scored.
    - `"autoregressive"` (Liu et al., 2024, GPHT: "Generative Pretrained Hierarchical Transformer for Time
      Series Forecasting"; the hierarchy is not implemented): with causal attention, every patch token
      predicts the next patch; `forecast` rolls this forward and reverses the instance normalisation. The
      normalisation statistics cover the whole window, as in GPHT, so a mean and a scale per channel are
      the only information that flows from later patches to earlier predictions.

    Both need non-overlapping patches (`patch_stride == patch_length`).
    """

    _auto_class = "AutoModelForPreTraining"

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__(config)
        if config.patch_stride != config.patch_length:
            raise ValueError(
                f"MMFMTimeSeriesForPreTraining needs non-overlapping patches: patch_stride ({config.patch_stride}) "
                f"must equal patch_length ({config.patch_length}), or masked and future values would be "
                "visible through overlapping neighbours."
            )
        if config.pretraining_objective == "autoregressive" and not config.is_causal:
            raise ValueError(
                "pretraining_objective='autoregressive' needs is_causal=True, or every patch could see the "
                "patch it has to predict."
            )
        self.encoder = MMFMTimeSeriesModel(config)
        self.head = nn.Linear(config.hidden_size, config.patch_length)
        self.post_init()

    def _patches(self, values: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, C, P, patch_length) non-overlapping patches."""
        length = self.config.patch_length
        return values.transpose(1, 2).unfold(-1, length, length)

    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        noise: torch.FloatTensor | None = None,
        **kwargs,
    ) -> MMFMTimeSeriesForPreTrainingOutput:
        r"""
        Args:
            past_values (`torch.FloatTensor` of shape `(B, L, C)`), past_observed_mask (same shape, optional):
                as for [`MMFMTimeSeriesModel`].
            noise (`torch.FloatTensor` of shape `(B, C, P)`, *optional*): masked objective: uniform noise whose
                smallest values (among patches with an observed value) mark the masked patches of each channel;
                drawn from the global generator if None.
        """
        observed = self.encoder._check_inputs(past_values, past_observed_mask)
        if self.config.pretraining_objective == "masked":
            return self._masked(past_values, observed, noise)
        return self._autoregressive(past_values, observed)

    def _masked(self, values, observed, noise) -> MMFMTimeSeriesForPreTrainingOutput:
        batch, _, channels = values.shape
        patches = self.config.num_patches
        if noise is not None and tuple(noise.shape) != (batch, channels, patches):
            raise ValueError(
                f"`noise` must have shape ({batch}, {channels}, {patches}), got {tuple(noise.shape)}."
            )
        # Only patches holding an observed value are candidates (padding is never a target), and each
        # channel keeps at least one of them visible.
        valid = self._patches(observed).any(dim=-1).reshape(batch * channels, patches)
        flat_noise = None if noise is None else noise.reshape(batch * channels, patches)
        mask = random_masking_with_padding(valid.bool(), self.config.mask_ratio, noise=flat_noise)
        mask = mask.view(batch, channels, patches)
        hidden_steps = mask.repeat_interleave(self.config.patch_length, dim=-1).transpose(1, 2)  # (B, L, C)
        visible = observed * (~hidden_steps).to(observed.dtype)
        output = self.encoder(values * visible, visible)
        target = self._patches((values.float() - output.loc) / output.scale)
        prediction = self.head(output.last_hidden_state)  # (B, C, P, patch_length)
        scored = self._patches(observed) * mask.unsqueeze(-1)
        loss = masked_mse(prediction.float(), target, scored.bool())
        return MMFMTimeSeriesForPreTrainingOutput(
            loss=loss, masked_loss=loss, prediction=prediction, target=target, mask=mask,
            loc=output.loc, scale=output.scale,
        )  # fmt: skip

    def _autoregressive(self, values, observed) -> MMFMTimeSeriesForPreTrainingOutput:
        output = self.encoder(values, observed)
        target = self._patches((values.float() - output.loc) / output.scale)
        prediction = self.head(output.last_hidden_state)
        scored = self._patches(observed)[:, :, 1:].bool()
        loss = masked_mse(prediction[:, :, :-1].float(), target[:, :, 1:], scored)
        return MMFMTimeSeriesForPreTrainingOutput(
            loss=loss, autoregressive_loss=loss, prediction=prediction, target=target,
            loc=output.loc, scale=output.scale,
        )  # fmt: skip

    @torch.no_grad()
    def forecast(
        self, past_values: torch.FloatTensor, past_observed_mask: torch.Tensor | None = None, horizon: int = 1
    ) -> torch.FloatTensor:
        """Autoregressive forecast of the next `horizon` steps (B, horizon, C), in the input's units: each
        step predicts one patch from the last `context_length` steps and slides the window forward."""
        if self.config.pretraining_objective != "autoregressive":
            raise ValueError("forecast needs a model trained with pretraining_objective='autoregressive'.")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"`horizon` must be a positive integer, got {horizon!r}.")
        values = past_values.float()
        observed = self.encoder._check_inputs(past_values, past_observed_mask).float()
        length = self.config.patch_length
        produced = []
        while sum(p.shape[1] for p in produced) < horizon:
            output = self.encoder(values, observed)
            step = self.head(output.last_hidden_state[:, :, -1]).float()  # (B, C, patch_length), normalised
            step = (step * output.scale.transpose(1, 2) + output.loc.transpose(1, 2)).transpose(1, 2)
            produced.append(step)
            values = torch.cat([values[:, length:], step], dim=1)
            observed = torch.cat([observed[:, length:], torch.ones_like(step)], dim=1)
        return torch.cat(produced, dim=1)[:, :horizon]


__all__ = [
    "MMFMTimeSeriesForPreTraining",
    "MMFMTimeSeriesForPreTrainingOutput",
    "MMFMTimeSeriesModel",
    "MMFMTimeSeriesModelOutput",
    "MMFMTimeSeriesPreTrainedModel",
]
