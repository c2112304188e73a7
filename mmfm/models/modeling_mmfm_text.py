"""mmfm text encoder: token embeddings, rotary or learned positions, padding mask; and its pretraining
models: masked LM (BERT), causal LM (GPT) and masked LM plus random token substitution (RTS).

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_text import MMFMTextConfig
from .mmfm_layers import (
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_rank,
    masked_mean,
    resolve_padding_mask,
    rotary_cos_sin,
)
from .mmfm_losses import masked_cross_entropy
from .mmfm_text_losses import causal_lm_loss, token_substitution_loss


@dataclass
class MMFMTextModelOutput(ModelOutput):
    r"""Output of [`MMFMTextModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, L, D)`): token states after the final norm.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): sentence embedding (see `config.pooling`).
        attention_mask (`torch.LongTensor` of shape `(B, L)`): 1 for real tokens, 0 for padding.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMTextEmbeddings(nn.Module):
    """Token embeddings plus, for `position_embedding_type="learned"`, an absolute position table."""

    def __init__(self, config: MMFMTextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.position_embedding_type == "learned"
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and (B, L) positions -> (B, L, D) embeddings."""
        embeddings = self.word_embeddings(input_ids)
        if self.position_embeddings is not None:
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(embeddings)


class MMFMTextPreTrainedModel(MMFMEncoderPreTrainedModel):
    config: MMFMTextConfig
    config_class = MMFMTextConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["MMFMLayer", "MMFMTextEmbeddings"]


class MMFMTextModel(MMFMTextPreTrainedModel):
    """Text encoder: `input_ids` (B, L) -> token states (B, L, D) and a pooled embedding (B, D)."""

    # Loading the encoder from a pretraining checkpoint leaves its heads behind, silently.
    _keys_to_ignore_on_load_unexpected = [r"^mlm_head", r"^lm_head", r"^substitution_head"]

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.embeddings = MMFMTextEmbeddings(config)
        self.transformer = MMFMTransformer(config, is_causal=config.is_causal)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        check_rank("input_ids", input_ids, 2, "(batch_size, sequence_length)")
        batch, length = input_ids.shape
        if length == 0:
            raise ValueError("`input_ids` has sequence length 0: empty text cannot be encoded.")
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"`input_ids` has sequence length {length} > max_position_embeddings "
                f"({self.config.max_position_embeddings}). Tokenize with truncation=True and "
                f"max_length={self.config.max_position_embeddings}, or use a config with a larger "
                "max_position_embeddings."
            )
        if self.config.validate_inputs:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"`input_ids` must lie in [0, vocab_size={self.config.vocab_size}), got values in "
                    f"[{low}, {high}]. Was the text tokenized with a different tokenizer?"
                )
        mask = resolve_padding_mask(
            "attention_mask", attention_mask, (batch, length), input_ids.device, self.config.validate_inputs
        )
        return mask.long()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMTextModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): defaults to the index of each
                real token, so left- and right-padded batches give the same positions.
        """
        attention_mask = self._check_inputs(input_ids, attention_mask)
        if position_ids is None:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        embeddings = self.embeddings(input_ids, position_ids)
        rotary = None
        if self.config.position_embedding_type == "rotary":
            rotary = rotary_cos_sin(
                position_ids, self.config.head_dim, self.config.rotary_base, embeddings.dtype
            )

        if self.config.is_causal:
            mask = create_causal_mask(self.config, embeddings, attention_mask, None, position_ids)
        else:
            mask = create_bidirectional_mask(self.config, embeddings, attention_mask)
        hidden, all_hidden, attentions = self.transformer(
            embeddings,
            mask,
            rotary,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        return MMFMTextModelOutput(
            last_hidden_state=hidden,
            pooler_output=self._pool(hidden, attention_mask),
            attention_mask=attention_mask,
            hidden_states=all_hidden,
            attentions=attentions,
        )

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L, D) token states -> (B, D) sentence embedding."""
        if self.config.pooling == "mean":
            return masked_mean(hidden, attention_mask.bool())
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        if self.config.pooling == "cls":
            # The first real token, so left-padded batches pool the same token as right-padded ones.
            return hidden[rows, attention_mask.argmax(dim=-1)]
        positions = torch.arange(attention_mask.shape[1], device=hidden.device)
        return hidden[rows, (attention_mask * positions).argmax(dim=-1)]


# ----------------------------------------------------------------------------------------------
# Pretraining models: the encoder (`self.encoder`, so `AutoModel` on a saved folder gives the bare
# encoder) plus the heads of its objectives. The masking itself lives in `mmfm.data.collators`.
# ----------------------------------------------------------------------------------------------

IGNORE_INDEX = -100


@dataclass
class MMFMTextMaskedLMOutput(ModelOutput):
    r"""Output of [`MMFMTextForMaskedLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy over the masked positions
            (returned when `labels` are given).
        logits (`torch.FloatTensor`): vocabulary scores. With `labels`: `(N, V)`, one row per masked
            position (`labels != -100`) in row-major order, i.e. aligned with `labels[labels != -100]`.
            Without `labels`: `(B, L, V)` for every position.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MMFMTextCausalLMOutput(ModelOutput):
    r"""Output of [`MMFMTextForCausalLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): next-token cross-entropy (with `labels`).
        logits (`torch.FloatTensor` of shape `(B, L, V)`): position t scores the token at t + 1.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MMFMTextForPreTrainingOutput(ModelOutput):
    r"""Output of [`MMFMTextForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `mlm_loss + substitution_loss`, over the
            losses whose labels were given.
        mlm_loss (`torch.FloatTensor` of shape `()`, *optional*): masked-LM cross-entropy (with `labels`).
        substitution_loss (`torch.FloatTensor` of shape `()`, *optional*): random-token-substitution BCE
            (with `substitution_labels`).
        mlm_logits (`torch.FloatTensor`, *optional*): `(N, V)` over the masked positions when `labels` are
            given (aligned with `labels[labels != -100]`); `(B, L, V)` when no labels at all are given;
            None when only `substitution_labels` are given (RTS alone never pays for the vocabulary).
        substitution_logits (`torch.FloatTensor` of shape `(B, L)`): per-token score that the token was
            replaced (sigmoid gives the probability).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    mlm_loss: torch.FloatTensor | None = None
    substitution_loss: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    substitution_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMTextLMHead(nn.Module):
    """BERT's masked-LM head: dense + activation + LayerNorm, then a decoder (tied to the input
    embeddings) with its own bias: (..., D) -> (..., V)."""

    def __init__(self, config: MMFMTextConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.act(self.dense(hidden_states))))


class MMFMTokenSubstitutionHead(nn.Module):
    """Per-token binary classifier of random token substitution (ELECTRA's discriminator head shape:
    dense + activation + a one-unit projection): (B, L, D) -> (B, L) scores."""

    def __init__(self, config: MMFMTextConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.dense(hidden_states))).squeeze(-1)


def _check_labels(
    name: str, labels: torch.Tensor, input_ids: torch.Tensor, valid_range: tuple[int, int] | None
) -> None:
    """`ValueError` naming `name` unless `labels` is an integer tensor shaped like `input_ids`, with
    values -100 or in [low, high) when `valid_range` is given (reads values: one device sync)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape (B, L), got {type(labels).__name__}.")
    if tuple(labels.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"`{name}` must have the shape of `input_ids` {tuple(input_ids.shape)} (one label per token, "
            f"-100 where no loss is wanted), got shape {tuple(labels.shape)}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"`{name}` must hold integer ids (torch.long), got dtype {labels.dtype}.")
    if valid_range is not None:
        low, high = valid_range
        scored = labels[labels != IGNORE_INDEX]
        if scored.numel() and (int(scored.min()) < low or int(scored.max()) >= high):
            raise ValueError(
                f"`{name}` must be -100 or in [{low}, {high}), got values in "
                f"[{int(scored.min())}, {int(scored.max())}]."
            )


def _masked_lm(head: MMFMTextLMHead, hidden: torch.Tensor, labels: torch.Tensor | None):
    """MLM loss and logits; with labels the vocabulary projection runs on the masked positions only
    (the (N, D) gather keeps the (B, L, V) logits, the largest tensor of MLM, from ever existing)."""
    if labels is None:
        return None, head(hidden)
    masked = labels != IGNORE_INDEX
    logits = head(hidden[masked])
    return masked_cross_entropy(logits, labels[masked]), logits


def _require_bidirectional(model_name: str, config: MMFMTextConfig) -> None:
    if config.is_causal:
        raise ValueError(
            f"{model_name} predicts tokens from both sides and needs bidirectional attention, but "
            "config.is_causal=True. Use MMFMTextForCausalLM for a causal model, or set is_causal=False."
        )


class MMFMTextForMaskedLM(MMFMTextPreTrainedModel):
    """Text encoder with BERT's masked-LM head (Devlin et al., 2019), tied to the input embeddings."""

    _auto_class = "AutoModelForMaskedLM"
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "mlm_head.decoder.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        _require_bidirectional(type(self).__name__, config)
        self.encoder = MMFMTextModel(config)
        self.mlm_head = MMFMTextLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.mlm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.mlm_head.decoder = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMTextMaskedLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids, some masked or replaced.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): the original id at the positions to
                predict, -100 elsewhere (as `DataCollatorForMaskedLM` makes them).
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): see [`MMFMTextModel`].
        """
        if labels is not None:
            valid = (0, self.config.vocab_size) if self.config.validate_inputs else None
            _check_labels("labels", labels, input_ids, valid)
        outputs = self.encoder(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        loss, logits = _masked_lm(self.mlm_head, outputs.last_hidden_state, labels)
        return MMFMTextMaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MMFMTextForCausalLM(MMFMTextPreTrainedModel):
    """Causal text encoder with a GPT-style next-token head (Radford et al., 2018): a projection tied to
    the input embeddings after the encoder's final LayerNorm. Needs `config.is_causal=True`.

    No `generate` support: this is a pretraining objective for an encoder.
    """

    _auto_class = "AutoModelForCausalLM"
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        if not config.is_causal:
            raise ValueError(
                "MMFMTextForCausalLM needs causal attention, but config.is_causal=False: every position "
                "would see the token it must predict. Build the config with is_causal=True (e.g. "
                "MMFMTextConfig.from_preset('tiny', is_causal=True, pooling='last'))."
            )
        self.encoder = MMFMTextModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMTextCausalLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): the *unshifted* targets, usually
                `input_ids` with padding set to -100 (`DataCollatorForCausalLM`); the model shifts them.
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): see [`MMFMTextModel`].
        """
        if labels is not None:
            valid = (0, self.config.vocab_size) if self.config.validate_inputs else None
            _check_labels("labels", labels, input_ids, valid)
        outputs = self.encoder(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = causal_lm_loss(logits, labels) if labels is not None else None
        return MMFMTextCausalLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MMFMTextForPreTraining(MMFMTextPreTrainedModel):
    """Text encoder with both pretraining heads: BERT's masked-LM head (tied to the input embeddings)
    and the per-token classifier of random token substitution (RTS, Di Liello et al., 2022).

    `loss` is the sum of the losses whose labels are given, so one class trains MLM, RTS or both.
    """

    _auto_class = "AutoModelForPreTraining"
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "mlm_head.decoder.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        _require_bidirectional(type(self).__name__, config)
        self.encoder = MMFMTextModel(config)
        self.mlm_head = MMFMTextLMHead(config)
        self.substitution_head = MMFMTokenSubstitutionHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.mlm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.mlm_head.decoder = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        substitution_labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> MMFMTextForPreTrainingOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids, masked and/or substituted.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): MLM targets, the original id at the
                positions to predict and -100 elsewhere (`DataCollatorForMaskedLM`).
            substitution_labels (`torch.LongTensor` of shape `(B, L)`, *optional*): 1 where the token was
                replaced, 0 where it is original, -100 on padding and special tokens
                (`DataCollatorForTokenSubstitution`).
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): see [`MMFMTextModel`].
        """
        validate = self.config.validate_inputs
        if labels is not None:
            _check_labels("labels", labels, input_ids, (0, self.config.vocab_size) if validate else None)
        if substitution_labels is not None:
            _check_labels("substitution_labels", substitution_labels, input_ids, (0, 2) if validate else None)
        outputs = self.encoder(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        mlm_loss = mlm_logits = None
        if labels is not None or substitution_labels is None:
            mlm_loss, mlm_logits = _masked_lm(self.mlm_head, hidden, labels)
        substitution_logits = self.substitution_head(hidden)
        substitution_loss = None
        if substitution_labels is not None:
            substitution_loss = token_substitution_loss(substitution_logits, substitution_labels)
        losses = [value for value in (mlm_loss, substitution_loss) if value is not None]
        return MMFMTextForPreTrainingOutput(
            loss=sum(losses[1:], losses[0]) if losses else None,
            mlm_loss=mlm_loss,
            substitution_loss=substitution_loss,
            mlm_logits=mlm_logits,
            substitution_logits=substitution_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = [
    "MMFMTextCausalLMOutput",
    "MMFMTextForCausalLM",
    "MMFMTextForMaskedLM",
    "MMFMTextForPreTraining",
    "MMFMTextForPreTrainingOutput",
    "MMFMTextLMHead",
    "MMFMTextMaskedLMOutput",
    "MMFMTextModel",
    "MMFMTextModelOutput",
    "MMFMTextPreTrainedModel",
    "MMFMTokenSubstitutionHead",
]
