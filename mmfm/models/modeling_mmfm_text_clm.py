"""Causal language modeling (GPT, Radford et al., 2018) on the causal mmfm text encoder, with
transformers' `generate`.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig
from .configuration_mmfm_text import MMFMTextConfig
from .mmfm_pretraining import MMFMPreTrainingMixin
from .mmfm_text_losses import causal_lm_loss
from .modeling_mmfm_text import MMFMTextModel, MMFMTextPreTrainedModel
from .modeling_mmfm_text_mlm import check_labels, token_shape


@dataclass
class CausalLMConfig(MMFMObjectiveConfig):
    """Causal language modeling has no hyperparameters of its own (it needs `is_causal=True`)."""


@dataclass
class MMFMTextCausalLMOutput(ModelOutput):
    r"""Output of [`MMFMTextForCausalLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): next-token cross-entropy (with `labels` or
            `shift_labels`).
        logits (`torch.FloatTensor` of shape `(B, L, V)`): position t scores the token at t + 1.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMTextForCausalLM(MMFMPreTrainingMixin, MMFMTextPreTrainedModel, GenerationMixin):
    """Causal text encoder with a GPT-style next-token head: a projection tied to the input embeddings
    after the encoder's final LayerNorm. Needs `config.is_causal=True`.

    `generate` works (so do `pipeline("text-generation")` and PEFT's causal-LM wrappers) without a key/value
    cache: each new token re-encodes the whole sequence, which is fine for the short continuations an
    encoder pretrained this way is asked for, and keeps the encoder free of decoding state.
    """

    objective_name = "clm"
    objective_config_class = CausalLMConfig
    encoder_requirements: ClassVar[dict] = {"is_causal": True}
    auto_classes = ("AutoModelForCausalLM", "AutoModelForPreTraining")
    _auto_class = "AutoModelForCausalLM"
    accepts_loss_kwargs = True
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "lm_head.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMTextModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def prepare_inputs_for_generation(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The whole sequence so far at every step (no cache); generation bookkeeping is not forwarded."""
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        shift_labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTextCausalLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): the *unshifted* targets, usually
                `input_ids` with padding set to -100 (`DataCollatorForCausalLM`); the model shifts them.
            shift_labels (`torch.LongTensor` of shape `(B, L)`, *optional*): targets already shifted (position
                t holds the token position t must predict), as transformers' causal-LM loss takes them; used
                instead of `labels`.
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*), inputs_embeds (`torch.FloatTensor`
                of shape `(B, L, D)`, *optional*, instead of `input_ids`): see [`MMFMTextModel`].
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): scored tokens of the whole accumulated
                step; the loss is then their summed cross-entropy divided by it.
        """
        valid = (0, self.config.vocab_size) if self.config.validate_inputs else None
        for name, targets in (("labels", labels), ("shift_labels", shift_labels)):
            if targets is not None:
                check_labels(
                    name, targets, token_shape(input_ids, inputs_embeds), valid, self.encoder.input_device()
                )
        outputs = self.encoder(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None or shift_labels is not None:
            loss = causal_lm_loss(
                logits, labels, shift_labels=shift_labels, num_items_in_batch=num_items_in_batch
            )
        return MMFMTextCausalLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )  # fmt: skip


__all__ = ["CausalLMConfig", "MMFMTextCausalLMOutput", "MMFMTextForCausalLM"]
