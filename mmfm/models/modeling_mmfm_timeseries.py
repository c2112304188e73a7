"""mmfm time-series encoder: reversible instance normalisation, channel-independent patching with a
missing-value mask, and a transformer over patches (PatchTST-style).

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .mmfm_heads import MMFMHeadMixin, classifier_dropout, sequence_classification_loss
from .mmfm_layers import MMFMEncoderPreTrainedModel, MMFMTransformer, check_finite, check_tensor, masked_mean


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

    def denormalize(self, values: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Inverse of `forward` for (B, H, C) values in normalised units (a forecast): back to the units of the
        input series, with the (B, 1, C) `loc` and `scale` `forward` returned."""
        if self.config.revin_affine:
            # RevIN's inverse (Kim et al., 2022), with its epsilon against a vanishing affine weight.
            values = (values - self.affine_bias) / (self.affine_weight + 1e-10)
        return values * scale + loc


def patch_values(values: torch.Tensor, patch_length: int) -> torch.Tensor:
    """(B, L, C) -> (B, C, P, patch_length) non-overlapping patches (the time-series objectives' targets)."""
    return values.transpose(1, 2).unfold(-1, patch_length, patch_length)


def patch_steps(patch_flags: torch.Tensor, patch_length: int) -> torch.Tensor:
    """(B, C, P) flags of non-overlapping patches -> (B, L, C) flags of the time steps inside them."""
    return patch_flags.repeat_interleave(patch_length, dim=-1).transpose(1, 2)


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
        device = self.input_device()
        check_tensor(
            "past_values", past_values, "(batch_size, context_length, num_channels)", 3, "float", device,
            hint="Convert the series with `.float()` (or use the time-series processor).",
        )  # fmt: skip
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
            check_tensor("past_observed_mask", past_observed_mask, "(batch_size, context_length, num_channels)",
                         dtype="mask", device=past_values.device)  # fmt: skip
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

    def _hide_masked_patches(
        self, past_values, observed, masked_patches
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero the values and observed flags of the (B, C, P) `masked_patches` (non-overlapping patches)."""
        batch, _, channels = past_values.shape
        expected = (batch, channels, self.config.num_patches)
        check_tensor("masked_patches", masked_patches, f"{expected}", device=past_values.device)
        if tuple(masked_patches.shape) != expected or masked_patches.dtype != torch.bool:
            raise ValueError(
                f"`masked_patches` must be a bool tensor of shape {expected} (one flag per channel and patch), "
                f"got {masked_patches.dtype} of shape {tuple(masked_patches.shape)}."
            )
        if self.config.patch_stride != self.config.patch_length:
            raise ValueError(
                "`masked_patches` needs non-overlapping patches (patch_stride == patch_length), or a masked "
                "patch's values would stay visible in its overlapping neighbours."
            )
        kept = (~patch_steps(masked_patches, self.config.patch_length)).to(observed.dtype)
        return past_values * kept, observed * kept

    @can_return_tuple
    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        masked_patches: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTimeSeriesModelOutput:
        r"""
        Args:
            past_values (`torch.FloatTensor` of shape `(B, L, C)`): L = `context_length`; missing entries
                may hold any finite value (they are masked).
            past_observed_mask (`torch.Tensor` of shape `(B, L, C)`, *optional*): 1 for observed values,
                0 for missing values and padding.
            masked_patches (`torch.BoolTensor` of shape `(B, C, P)`, *optional*): patches hidden by a masked
                objective, as PatchTST's masking: their values are zeroed (after, and left out of, the instance
                normalisation) and they stay tokens that attend and are attended like observed patches.
                Missing values, by contrast, are removed from attention.
        """
        observed = self._check_inputs(past_values, past_observed_mask)
        values = past_values.float()
        if masked_patches is not None:
            values, observed = self._hide_masked_patches(values, observed, masked_patches)
        normalised, loc, scale = self.normalization(values, observed.float())
        tokens, patch_mask = self.embeddings(normalised, observed)
        batch, channels, patches, dim = tokens.shape
        flat_tokens = tokens.reshape(batch * channels, patches, dim)
        attended = patch_mask if masked_patches is None else patch_mask | masked_patches
        mask = self._attention_mask(flat_tokens, attended.reshape(batch * channels, patches))
        hidden, all_hidden, attentions = self.transformer(
            flat_tokens,
            mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            state_shape=(batch, channels, patches, dim),
        )
        pooled = (
            masked_mean(hidden.flatten(0, 1), patch_mask.flatten(0, 1)).view(batch, channels, dim).mean(dim=1)
        )
        return MMFMTimeSeriesModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            patch_mask=patch_mask.long(),
            loc=loc,
            scale=scale,
            hidden_states=all_hidden,
            attentions=attentions,
        )


# ----------------------------------------------------------------------------------------------
# Downstream heads (as PatchTSTForClassification / PatchTSTForRegression / PatchTSTForPrediction)
# ----------------------------------------------------------------------------------------------


class MMFMTimeSeriesForClassification(MMFMHeadMixin, MMFMTimeSeriesPreTrainedModel):
    """Time-series encoder + dropout + linear classifier on the series embedding: (B, num_labels).

    The embedding is each channel's mean over its observed patches; with `num_input_channels` fixed the
    channels are concatenated (B, C * D), as PatchTST's classification head flattens them, so the classifier
    knows which channel said what; with any channel count allowed (`num_input_channels=None`) they are
    averaged (B, D), the encoder's `pooler_output`. Labels, losses and `problem_type` are those of
    `BertForSequenceClassification` (transformers has no time-series classification Auto class, so
    `AutoModelForSequenceClassification` loads it), and the output is a `SequenceClassifierOutput`.
    """

    auto_classes = ("AutoModelForSequenceClassification",)
    _auto_class = "AutoModelForSequenceClassification"
    pipeline_tasks = ("time-series-classification",)

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMTimeSeriesModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size * (config.num_input_channels or 1), config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def series_embedding(self, outputs: MMFMTimeSeriesModelOutput) -> torch.Tensor:
        """(B, C * D) concatenated channel embeddings when `num_input_channels` is fixed, else (B, D)."""
        if self.config.num_input_channels is None:
            return outputs.pooler_output
        hidden, patch_mask = outputs.last_hidden_state, outputs.patch_mask.bool()
        per_channel = masked_mean(hidden.flatten(0, 1), patch_mask.flatten(0, 1))
        return per_channel.view(hidden.shape[0], -1)

    @can_return_tuple
    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        Args:
            past_values (`(B, L, C)`), past_observed_mask (`(B, L, C)`, *optional*): see [`MMFMTimeSeriesModel`].
            labels (`torch.Tensor` of shape `(B,)` or `(B, num_labels)`, *optional*): class ids (single-label,
                -100 ignored), 0/1 floats (multi-label) or float targets (regression).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled series of the accumulated step.

        Returns:
            `SequenceClassifierOutput`: `loss` (with `labels`), `logits` (B, num_labels), `hidden_states`
            (each `(B, C, P, D)`) and `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            past_values, past_observed_mask=past_observed_mask, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(self.series_embedding(outputs)))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MMFMTimeSeriesForRegression(MMFMTimeSeriesForClassification):
    """[`MMFMTimeSeriesForClassification`] fixed to `problem_type="regression"`: `num_labels` float targets per
    series (PatchTST's `num_targets`), MSE loss, predictions in `logits` (B, num_labels). Fixing the problem
    type matters with several targets, which transformers would otherwise read as multi-label."""

    pipeline_tasks = ("time-series-regression",)

    def __init__(self, config: MMFMTimeSeriesConfig):
        if config.problem_type not in (None, "regression"):
            raise ValueError(
                f"MMFMTimeSeriesForRegression needs config.problem_type='regression' (or None), got "
                f"{config.problem_type!r}; use MMFMTimeSeriesForClassification for classification."
            )
        config.problem_type = "regression"
        super().__init__(config)


@dataclass
class MMFMTimeSeriesForPredictionOutput(ModelOutput):
    r"""Output of [`MMFMTimeSeriesForPrediction`] (the fields of transformers' `PatchTSTForPredictionOutput`).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): MSE against `future_values` (with them).
        prediction_outputs (`torch.FloatTensor` of shape `(B, H, C)`): the forecast of the next
            H = `prediction_length` steps of each channel, in the units of `past_values`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, C, P, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B * C, H, P, P)` (eager).
        loc (`torch.FloatTensor` of shape `(B, 1, C)`): shift removed by the instance normalisation.
        scale (`torch.FloatTensor` of shape `(B, 1, C)`): scale removed by the instance normalisation.
    """

    loss: torch.FloatTensor | None = None
    prediction_outputs: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    loc: torch.FloatTensor | None = None
    scale: torch.FloatTensor | None = None


class MMFMTimeSeriesForPrediction(MMFMHeadMixin, MMFMTimeSeriesPreTrainedModel):
    """Forecasting, as `PatchTSTForPrediction` (Nie et al., 2023): each channel's patch tokens (P, D) are
    flattened and projected to the next `config.prediction_length` steps by one linear layer shared by the
    channels, in normalised units; the instance normalisation is then undone (RevIN), so forecasts come in
    the units of `past_values`, and the MSE against `future_values` is taken there, as PatchTST does."""

    auto_classes = ("AutoModelForTimeSeriesPrediction",)
    _auto_class = "AutoModelForTimeSeriesPrediction"
    head_modules = ("prediction_head",)
    pipeline_tasks = ("time-series-forecasting",)
    # The MSE is a mean over values; `num_items_in_batch` (counted labels) does not apply.
    accepts_loss_kwargs = False

    def __init__(self, config: MMFMTimeSeriesConfig):
        super().__init__(config)
        self.encoder = MMFMTimeSeriesModel(config)
        self.dropout = classifier_dropout(config)
        self.prediction_head = nn.Linear(config.num_patches * config.hidden_size, config.prediction_length)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def _check_future(
        self, name: str, tensor: torch.Tensor, past_values: torch.Tensor, dtype: str | None
    ) -> None:
        expected = (past_values.shape[0], self.config.prediction_length, past_values.shape[2])
        check_tensor(
            name, tensor, "(batch_size, prediction_length, num_channels)", 3, dtype, past_values.device
        )
        if tuple(tensor.shape) != expected:
            raise ValueError(
                f"`{name}` must have shape {expected} (batch_size, prediction_length={self.config.prediction_length}, "
                f"channels of `past_values`), got {tuple(tensor.shape)}."
            )

    @can_return_tuple
    def forward(
        self,
        past_values: torch.FloatTensor,
        past_observed_mask: torch.Tensor | None = None,
        future_values: torch.FloatTensor | None = None,
        future_observed_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTimeSeriesForPredictionOutput:
        r"""
        Args:
            past_values (`(B, L, C)`), past_observed_mask (`(B, L, C)`, *optional*): see [`MMFMTimeSeriesModel`].
            future_values (`torch.FloatTensor` of shape `(B, H, C)`, *optional*): the true next H =
                `prediction_length` values (the labels).
            future_observed_mask (`torch.Tensor` of shape `(B, H, C)`, *optional*): 1 where `future_values` is
                observed; the loss is averaged over those only (all by default).

        Returns:
            `MMFMTimeSeriesForPredictionOutput`: `loss` (with `future_values`), `prediction_outputs`
            (B, H, C), `loc` and `scale` (B, 1, C), `hidden_states` and `attentions` when asked.
        """
        outputs = self.encoder(
            past_values, past_observed_mask=past_observed_mask, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        hidden = outputs.last_hidden_state  # (B, C, P, D)
        normalised = self.prediction_head(self.dropout(hidden.flatten(2))).transpose(1, 2)  # (B, H, C)
        predictions = self.encoder.normalization.denormalize(normalised, outputs.loc, outputs.scale)
        loss = None
        if future_values is not None:
            self._check_future("future_values", future_values, past_values, "float")
            if self.config.validate_inputs:
                check_finite("future_values", future_values)
            squared = (predictions - future_values) ** 2
            if future_observed_mask is None:
                loss = squared.mean()
            else:
                self._check_future("future_observed_mask", future_observed_mask, past_values, "mask")
                observed = future_observed_mask.to(squared.dtype)
                loss = (squared * observed).sum() / observed.sum().clamp(min=1.0)
        return MMFMTimeSeriesForPredictionOutput(
            loss=loss,
            prediction_outputs=predictions,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            loc=outputs.loc,
            scale=outputs.scale,
        )


__all__ = [
    "MMFMTimeSeriesForClassification",
    "MMFMTimeSeriesForPrediction",
    "MMFMTimeSeriesForPredictionOutput",
    "MMFMTimeSeriesForRegression",
    "MMFMTimeSeriesModel",
    "MMFMTimeSeriesModelOutput",
    "MMFMTimeSeriesPreTrainedModel",
    "patch_steps",
    "patch_values",
]
