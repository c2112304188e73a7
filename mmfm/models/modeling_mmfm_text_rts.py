"""Random token substitution (RTS, Di Liello et al., 2022, "Effective Pre-Training Objectives for
Transformer-based Autoencoders") on the mmfm text encoder, with BERT's masked-LM head beside it.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig, require_open_fraction
from .configuration_mmfm_text import MMFMTextConfig
from .mmfm_pretraining import MMFMPreTrainingMixin
from .mmfm_text_losses import token_substitution_loss
from .modeling_mmfm_text import MMFMTextModel, MMFMTextPreTrainedModel
from .modeling_mmfm_text_mlm import MMFMTextLMHead, check_labels, masked_lm, token_shape


@dataclass
class TokenSubstitutionConfig(MMFMObjectiveConfig):
    """The corruption of random token substitution, applied by `DataCollatorForTokenSubstitution`.

    Args:
        substitution_probability: fraction of the real, non-special tokens replaced by a random other token
            (15% as in the authors' reference code, the same rate as BERT's and ELECTRA's).
        whole_word_mask: substitute whole words rather than subword pieces.
    """

    substitution_probability: float = 0.15
    whole_word_mask: bool = False

    def check(self) -> None:
        require_open_fraction(self, "substitution_probability")


@dataclass
class MMFMTextForPreTrainingOutput(ModelOutput):
    r"""Output of [`MMFMTextForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): `mlm_loss + substitution_loss`, over the
            losses whose labels were given.
        mlm_loss (`torch.FloatTensor` of shape `()`, *optional*): masked-LM cross-entropy (with `labels`).
        substitution_loss (`torch.FloatTensor` of shape `()`, *optional*): random-token-substitution BCE
            (with `substitution_labels`).
        mlm_logits (`torch.FloatTensor`, *optional*): `(B, L, V)`, or `(N, V)` over the scored positions with
            `sparse_prediction=True`; None when only `substitution_labels` are given (RTS alone never pays
            for the vocabulary).
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


class MMFMTextForPreTraining(MMFMPreTrainingMixin, MMFMTextPreTrainedModel):
    """Text encoder with both pretraining heads: BERT's masked-LM head (tied to the input embeddings)
    and the per-token classifier of random token substitution.

    `loss` is the sum of the losses whose labels are given, so one class trains RTS, MLM or both; the
    `rts` objective gives substitution labels only.
    """

    objective_name = "rts"
    objective_config_class = TokenSubstitutionConfig
    encoder_requirements: ClassVar[dict] = {"is_causal": False}
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "mlm_head.decoder.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
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
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        substitution_labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        sparse_prediction: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
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
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*), inputs_embeds (`torch.FloatTensor`
                of shape `(B, L, D)`, *optional*, instead of `input_ids`): see [`MMFMTextModel`].
            sparse_prediction (`bool`): with `labels`, project only the scored positions onto the vocabulary.
        """
        validate, device = self.config.validate_inputs, self.encoder.input_device()
        if labels is not None:
            vocab = (0, self.config.vocab_size) if validate else None
            check_labels("labels", labels, token_shape(input_ids, inputs_embeds), vocab, device)
        if substitution_labels is not None:
            binary = (0, 2) if validate else None
            check_labels(
                "substitution_labels",
                substitution_labels,
                token_shape(input_ids, inputs_embeds),
                binary,
                device,
            )
        outputs = self.encoder(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        hidden = outputs.last_hidden_state
        mlm_loss = mlm_logits = None
        if labels is not None or substitution_labels is None:
            mlm_loss, mlm_logits = masked_lm(self.mlm_head, hidden, labels, sparse_prediction)
        substitution_logits = self.substitution_head(hidden)
        substitution_loss = None
        if substitution_labels is not None:
            substitution_loss = token_substitution_loss(substitution_logits, substitution_labels)
        losses = [value for value in (mlm_loss, substitution_loss) if value is not None]
        return MMFMTextForPreTrainingOutput(
            loss=sum(losses[1:], losses[0]) if losses else None, mlm_loss=mlm_loss,
            substitution_loss=substitution_loss, mlm_logits=mlm_logits, substitution_logits=substitution_logits,
            hidden_states=outputs.hidden_states, attentions=outputs.attentions,
        )  # fmt: skip


__all__ = [
    "MMFMTextForPreTraining",
    "MMFMTextForPreTrainingOutput",
    "MMFMTokenSubstitutionHead",
    "TokenSubstitutionConfig",
]
