"""mmfm audio encoder: log-mel spectrogram patches (SSAST-style) of variable length with a padding mask.

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

from .configuration_mmfm_audio import MMFMAudioConfig
from .mmfm_heads import MMFMHeadMixin, classifier_dropout, sequence_classification_loss
from .mmfm_layers import (
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_finite,
    check_tensor,
    check_token_flags,
    masked_mean,
    resolve_padding_mask,
)


@dataclass
class MMFMAudioModelOutput(ModelOutput):
    r"""Output of [`MMFMAudioModel`].

    Tokens are ordered time-major: token `1 + t * F_p + f` is the patch of time slot `t` and
    frequency band `f`, with `F_p = num_mel_bins / patch_frequency_size`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + T_p * F_p, D)`): class token then patches.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): clip embedding (see `config.pooling`).
        attention_mask (`torch.LongTensor` of shape `(B, 1 + T_p * F_p)`): 1 for the class token and for
            patches that hold at least one real frame, 0 for padding patches.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, 1 + T_p * F_p, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, 1 + T_p * F_p, 1 + T_p * F_p)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMAudioEmbeddings(nn.Module):
    """Cut (B, T, F) log-mel frames into patches, embed them, add frequency and time positions."""

    def __init__(self, config: MMFMAudioConfig, use_mask_token: bool = False):
        super().__init__()
        self.config = config
        # SSAST's mask embedding for masked patches; only its pretraining model has it.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_mask_token else None
        self.patch_embedding = nn.Conv2d(
            1,
            config.hidden_size,
            kernel_size=(config.patch_frequency_size, config.patch_time_size),
            stride=(config.patch_frequency_size, config.patch_time_size),
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.frequency_position_embeddings = nn.Parameter(
            torch.zeros(1, 1, config.num_frequency_patches, config.hidden_size)
        )
        self.time_position_embeddings = nn.Parameter(
            torch.zeros(1, config.max_time_patches, 1, config.hidden_size)
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_features: torch.Tensor,
        frame_mask: torch.Tensor,
        masked_patches: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed (B, T, F) features whose real frames are marked by (B, T) bool `frame_mask`; patches where
        (B, T_p * F_p) `masked_patches` is true get the mask token (SSAST) before positions are added.

        Returns tokens (B, 1 + T_p * F_p, D) and their bool mask (B, 1 + T_p * F_p).
        """
        features, frame_mask = pad_to_patches(input_features, frame_mask, self.config.patch_time_size)
        features = features.to(self.patch_embedding.weight.dtype)
        batch = features.shape[0]
        # (B, T, F) -> (B, 1, F, T) -> (B, D, F_p, T_p) -> (B, T_p, F_p, D)
        patches = self.patch_embedding(features.transpose(1, 2).unsqueeze(1)).permute(0, 3, 2, 1)
        time_patches = patches.shape[1]
        if masked_patches is not None:
            grid = masked_patches.view(batch, time_patches, -1, 1)
            patches = torch.where(grid, self.mask_token.to(patches.dtype).unsqueeze(1), patches)
        patches = (
            patches + self.frequency_position_embeddings + self.time_position_embeddings[:, :time_patches]
        )
        tokens = patches.reshape(batch, -1, patches.shape[-1])
        token_mask = patch_validity(frame_mask, self.config)
        cls = self.cls_token.expand(batch, -1, -1).to(tokens.dtype)
        tokens = torch.cat([cls, tokens], dim=1)
        token_mask = torch.cat([token_mask.new_ones(batch, 1), token_mask], dim=1)
        return self.dropout(tokens), token_mask


def pad_to_patches(
    input_features: torch.Tensor, frame_mask: torch.Tensor, patch_time: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the padding frames of (B, T, F) features and pad T with zeros to whole patches.

    Zeroing makes a padded clip embed exactly like the same clip alone (itself padded with zeros).
    Returns the features (B, T', F) and the frame mask (B, T')."""
    features = input_features * frame_mask.unsqueeze(-1).to(input_features.dtype)
    extra = (-features.shape[1]) % patch_time
    if extra:
        features = nn.functional.pad(features, (0, 0, 0, extra))
        frame_mask = nn.functional.pad(frame_mask, (0, extra))
    return features, frame_mask


def patch_validity(frame_mask: torch.Tensor, config: MMFMAudioConfig) -> torch.Tensor:
    """(B, T') frame mask (T' whole patches) -> (B, T_p * F_p) bool: patches holding a real frame."""
    batch = frame_mask.shape[0]
    time_valid = frame_mask.view(batch, -1, config.patch_time_size).any(dim=-1)  # (B, T_p)
    return time_valid.repeat_interleave(config.num_frequency_patches, dim=1)


def patchify_spectrogram(features: torch.Tensor, config: MMFMAudioConfig) -> torch.Tensor:
    """(B, T', F) features (T' whole patches) -> (B, T_p * F_p, patch_time * patch_frequency) patch
    vectors in token order (time-major)."""
    batch, frames, bins = features.shape
    pt, pf = config.patch_time_size, config.patch_frequency_size
    grid = features.reshape(batch, frames // pt, pt, bins // pf, pf).permute(0, 1, 3, 2, 4)
    return grid.reshape(batch, -1, pt * pf)


class MMFMAudioPreTrainedModel(MMFMEncoderPreTrainedModel):
    config: MMFMAudioConfig
    config_class = MMFMAudioConfig
    base_model_prefix = "encoder"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    _no_split_modules = ["MMFMLayer", "MMFMAudioEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMAudioEmbeddings):
            std = self.config.initializer_range
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.frequency_position_embeddings, std=std)
            init.trunc_normal_(module.time_position_embeddings, std=std)
            if module.mask_token is not None:
                init.trunc_normal_(module.mask_token, std=std)


class MMFMAudioModel(MMFMAudioPreTrainedModel):
    """Audio encoder: `input_features` (B, T, num_mel_bins) -> patch tokens and a clip embedding (B, D)."""

    # SSAST's mask token is built only for its model; a bare encoder loads without it.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.mask_token$"]

    def __init__(self, config: MMFMAudioConfig, use_mask_token: bool = False):
        super().__init__(config)
        self.embeddings = MMFMAudioEmbeddings(config, use_mask_token=use_mask_token)
        self.transformer = MMFMTransformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _check_inputs(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        check_tensor(
            "input_features", input_features, "(batch_size, num_frames, num_mel_bins)", 3, "float",
            self.input_device(), hint="Compute log-mel features with the audio feature extractor.",
        )  # fmt: skip
        batch, frames, bins = input_features.shape
        if bins != self.config.num_mel_bins:
            raise ValueError(
                f"`input_features` has {bins} mel bins in its last dimension, the model expects num_mel_bins="
                f"{self.config.num_mel_bins}. Use a feature extractor with the same num_mel_bins, and pass "
                "features as (batch, frames, mel bins)."
            )
        if frames == 0:
            raise ValueError("`input_features` has 0 frames: empty audio cannot be encoded.")
        if frames > self.config.max_frames:
            raise ValueError(
                f"`input_features` has {frames} frames > {self.config.max_frames} (max_time_patches "
                f"{self.config.max_time_patches} x patch_time_size {self.config.patch_time_size}). Cut the "
                "clip (feature extractor max_length with truncation=True) or use a larger max_time_patches."
            )
        if self.config.validate_inputs:
            check_finite("input_features", input_features)
        return resolve_padding_mask(
            "attention_mask",
            attention_mask,
            (batch, frames),
            input_features.device,
            self.config.validate_inputs,
        )

    def _check_masked_patches(self, input_features: torch.Tensor, masked_patches: torch.Tensor) -> None:
        time_patches = -(-input_features.shape[1] // self.config.patch_time_size)
        expected = (input_features.shape[0], time_patches * self.config.num_frequency_patches)
        check_token_flags(
            "masked_patches", masked_patches, expected, self.embeddings.mask_token, "use_mask_token",
            "MMFMAudioForSSAST",
        )  # fmt: skip

    @can_return_tuple
    def forward(
        self,
        input_features: torch.FloatTensor,
        attention_mask: torch.Tensor | None = None,
        masked_patches: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMAudioModelOutput:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(B, T, num_mel_bins)`): log-mel frames.
            attention_mask (`torch.Tensor` of shape `(B, T)`, *optional*): 1 for real frames, 0 for padding.
            masked_patches (`torch.BoolTensor` of shape `(B, T_p * F_p)`, *optional*): patches whose embedding
                is replaced by the mask token (SSAST; needs a model built with `use_mask_token=True`).
        """
        frame_mask = self._check_inputs(input_features, attention_mask)
        if masked_patches is not None:
            self._check_masked_patches(input_features, masked_patches)
        embeddings, token_mask = self.embeddings(input_features, frame_mask, masked_patches)
        mask = create_bidirectional_mask(self.config, embeddings, token_mask.long())
        hidden, all_hidden, attentions = self.transformer(
            embeddings,
            mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = masked_mean(hidden[:, 1:], token_mask[:, 1:])
        return MMFMAudioModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            attention_mask=token_mask.long(),
            hidden_states=all_hidden,
            attentions=attentions,
        )


class MMFMAudioForAudioClassification(MMFMHeadMixin, MMFMAudioPreTrainedModel):
    """Audio encoder + dropout + linear classifier on the clip embedding (`config.pooling`), as
    `ASTForAudioClassification` and `Wav2Vec2ForSequenceClassification`: (B, num_labels), classification or
    regression by `config.problem_type`."""

    auto_classes = ("AutoModelForAudioClassification",)
    _auto_class = "AutoModelForAudioClassification"

    def __init__(self, config: MMFMAudioConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMAudioModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @can_return_tuple
    def forward(
        self,
        input_features: torch.FloatTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        Args:
            input_features (`torch.FloatTensor` of shape `(B, T, num_mel_bins)`), attention_mask (`(B, T)`,
                *optional*): see [`MMFMAudioModel`].
            labels (`torch.Tensor` of shape `(B,)` or `(B, num_labels)`, *optional*): class ids (single-label,
                -100 ignored), 0/1 floats (multi-label) or float targets (regression).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled samples of the accumulated step.

        Returns:
            `SequenceClassifierOutput`: `loss` (with `labels`), `logits` (B, num_labels), `hidden_states` and
            `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            input_features, attention_mask=attention_mask, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "MMFMAudioForAudioClassification",
    "MMFMAudioModel",
    "MMFMAudioModelOutput",
    "MMFMAudioPreTrainedModel",
    "pad_to_patches",
    "patch_validity",
    "patchify_spectrogram",
]
