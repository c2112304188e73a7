"""mmfm text encoder: token embeddings, rotary or learned positions, padding mask. Its pretraining models
(masked LM, causal LM, random token substitution) live in `modeling_mmfm_text_<objective>.py`.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_text import MMFMTextConfig
from .mmfm_heads import (
    MMFMHeadMixin,
    classifier_dropout,
    sequence_classification_loss,
    token_classification_loss,
)
from .mmfm_layers import (
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_tensor,
    masked_mean,
    resolve_padding_mask,
    rotary_cos_sin,
)


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

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, L) ids (or their (B, L, D) embeddings) and (B, L) positions -> (B, L, D) embeddings."""
        embeddings = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
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

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.embeddings = MMFMTextEmbeddings(config)
        self.transformer = MMFMTransformer(config, is_causal=config.is_causal)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def _check_inputs(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` (B, L) and `inputs_embeds` (B, L, D).")
        device = self.input_device()
        if inputs_embeds is not None:
            check_tensor(
                "inputs_embeds",
                inputs_embeds,
                "(batch_size, sequence_length, hidden_size)",
                3,
                "float",
                device,
            )
            if inputs_embeds.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"`inputs_embeds` has width {inputs_embeds.shape[-1]}, the model's hidden_size is "
                    f"{self.config.hidden_size}."
                )
        else:
            check_tensor(
                "input_ids", input_ids, "(batch_size, sequence_length)", 2, "index", device,
                hint="Token ids come from the tokenizer (`return_tensors='pt'`); cast with `.long()`.",
            )  # fmt: skip
        batch, length = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if length == 0:
            raise ValueError("`input_ids` has sequence length 0: empty text cannot be encoded.")
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"`input_ids` has sequence length {length} > max_position_embeddings "
                f"({self.config.max_position_embeddings}). Tokenize with truncation=True and "
                f"max_length={self.config.max_position_embeddings}, or use a config with a larger "
                "max_position_embeddings."
            )
        if self.config.validate_inputs and input_ids is not None:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"`input_ids` must lie in [0, vocab_size={self.config.vocab_size}), got values in "
                    f"[{low}, {high}]. Was the text tokenized with a different tokenizer?"
                )
        mask = resolve_padding_mask(
            "attention_mask",
            attention_mask,
            (batch, length),
            (input_ids if input_ids is not None else inputs_embeds).device,
            self.config.validate_inputs,
        )
        return mask.long()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTextModelOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids (or pass `inputs_embeds`).
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*): defaults to the index of each
                real token, so left- and right-padded batches give the same positions.
            inputs_embeds (`torch.FloatTensor` of shape `(B, L, D)`, *optional*): token embeddings to use
                instead of looking up `input_ids` (prompt tuning, PEFT), as transformers' models take them.
        """
        attention_mask = self._check_inputs(input_ids, attention_mask, inputs_embeds)
        if position_ids is not None:
            check_tensor(
                "position_ids", position_ids, "(batch_size, sequence_length)", 2, "index", self.input_device()
            )
            if position_ids.shape != attention_mask.shape:
                raise ValueError(
                    f"`position_ids` must have the shape of `input_ids` {tuple(attention_mask.shape)}, got "
                    f"{tuple(position_ids.shape)}."
                )
        else:
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        embeddings = self.embeddings(input_ids, position_ids, inputs_embeds)
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
# Downstream heads (as BertForSequenceClassification / BertForTokenClassification)
# ----------------------------------------------------------------------------------------------


class MMFMTextForSequenceClassification(MMFMHeadMixin, MMFMTextPreTrainedModel):
    """Text encoder + dropout + linear classifier on the pooled embedding (`config.pooling`): (B, num_labels).

    Classification or regression by `config.problem_type` (inferred from `num_labels` and the labels' dtype
    when None), with `num_labels`, `id2label` and `label2id` from the config, as `BertForSequenceClassification`.
    Loads from an encoder export or a pretraining export (the encoder's weights, a fresh classifier).
    """

    auto_classes = ("AutoModelForSequenceClassification",)
    _auto_class = "AutoModelForSequenceClassification"

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMTextModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.set_input_embeddings(value)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        Args:
            input_ids, attention_mask, position_ids, inputs_embeds: see [`MMFMTextModel`].
            labels (`torch.Tensor` of shape `(B,)` or `(B, num_labels)`, *optional*): class ids (single-label,
                -100 ignored), 0/1 floats (multi-label) or float targets (regression).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled samples of the whole accumulated
                step (single-label loss summed and divided by it, as `Trainer` passes it).

        Returns:
            `SequenceClassifierOutput`: `loss` (with `labels`), `logits` (B, num_labels), `hidden_states`
            and `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class MMFMTextForTokenClassification(MMFMHeadMixin, MMFMTextPreTrainedModel):
    """Text encoder + dropout + linear classifier on every token: (B, L, num_labels), as
    `BertForTokenClassification` (named entities, part-of-speech tags; labels -100 where no loss is wanted)."""

    auto_classes = ("AutoModelForTokenClassification",)
    _auto_class = "AutoModelForTokenClassification"

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMTextModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.set_input_embeddings(value)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> TokenClassifierOutput:
        r"""
        Args:
            input_ids, attention_mask, position_ids, inputs_embeds: see [`MMFMTextModel`].
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): class id per token, -100 where no loss is
                wanted (padding, special tokens, continuation pieces).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled tokens of the whole accumulated
                step (the loss is their summed cross-entropy divided by it).

        Returns:
            `TokenClassifierOutput`: `loss` (with `labels`), `logits` (B, L, num_labels), `hidden_states` and
            `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = token_classification_loss(logits, labels, self.config, num_items_in_batch)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "MMFMTextForSequenceClassification",
    "MMFMTextForTokenClassification",
    "MMFMTextModel",
    "MMFMTextModelOutput",
    "MMFMTextPreTrainedModel",
]
