"""Masked language modeling (BERT, Devlin et al., 2019) on the mmfm text encoder.

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
from .mmfm_layers import check_tensor
from .mmfm_losses import masked_cross_entropy
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_text import MMFMTextModel, MMFMTextPreTrainedModel

IGNORE_INDEX = -100


def check_replacement_rates(config, mask_name: str, random_name: str) -> None:
    """`ValueError` unless both rates are in [0, 1] and sum to at most 1 (the rest stay unchanged)."""
    for name in (mask_name, random_name):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1], got {value!r}.")
    if getattr(config, mask_name) + getattr(config, random_name) > 1.0:
        raise ValueError(
            f"{type(config).__name__}.{mask_name} + {random_name} must not exceed 1 (the rest of the selected "
            "tokens are kept)."
        )


@dataclass
class MaskedLMConfig(MMFMObjectiveConfig):
    """The corruption of masked language modeling, applied by `DataCollatorForMaskedLM` (recorded in the
    model's `pretraining_config` so continued pretraining corrupts the same way).

    Args:
        mlm_probability: fraction of the real, non-special tokens selected (BERT sec. 3.1: 15%).
        mask_replace_prob: of the selected tokens, the fraction replaced by `[MASK]` (BERT: 80%).
        random_replace_prob: of the selected tokens, the fraction replaced by a random token (BERT: 10%);
            the rest (10%) are left unchanged but still predicted.
        whole_word_mask: select whole words rather than subword pieces (BERT's whole word masking release).
    """

    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False

    def check(self) -> None:
        require_open_fraction(self, "mlm_probability")
        check_replacement_rates(self, "mask_replace_prob", "random_replace_prob")


@dataclass
class MMFMTextMaskedLMOutput(ModelOutput):
    r"""Output of [`MMFMTextForMaskedLM`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): masked-LM cross-entropy (with `labels`).
        logits (`torch.FloatTensor`): `(B, L, V)` scores of every position; with `sparse_prediction=True` and
            `labels`, `(N, V)` for the N scored positions only (aligned with `labels[labels != -100]`).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, L, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, L, L)` (eager attention).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
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


def token_shape(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> tuple[int, int]:
    """(B, L) of a text batch given as ids or as embeddings (refusing anything else, naming it, so labels are
    checked against a real batch; the encoder checks the rest)."""
    if inputs_embeds is not None:
        check_tensor("inputs_embeds", inputs_embeds, "(batch_size, sequence_length, hidden_size)", 3)
        return tuple(inputs_embeds.shape[:2])
    check_tensor("input_ids", input_ids, "(batch_size, sequence_length)", 2)
    return tuple(input_ids.shape)


def check_labels(
    name: str,
    labels: torch.Tensor,
    shape: tuple[int, int],
    valid_range: tuple[int, int] | None,
    device: torch.device | None = None,
) -> None:
    """`ValueError` (`TypeError` for a wrong type or dtype) naming `name` unless `labels` is an integer tensor
    of the batch's (B, L) `shape` on `device`, with values -100 or in [low, high) when `valid_range` is given
    (reads values: one device sync)."""
    check_tensor(name, labels, "(batch_size, sequence_length)", dtype="integer", device=device)
    if tuple(labels.shape) != tuple(shape):
        raise ValueError(
            f"`{name}` must have the shape of `input_ids` {tuple(shape)} (one label per token, "
            f"-100 where no loss is wanted), got shape {tuple(labels.shape)}."
        )
    if valid_range is not None:
        low, high = valid_range
        scored = labels[labels != IGNORE_INDEX]
        if scored.numel() and (int(scored.min()) < low or int(scored.max()) >= high):
            raise ValueError(
                f"`{name}` must be -100 or in [{low}, {high}), got values in "
                f"[{int(scored.min())}, {int(scored.max())}]."
            )


def masked_lm(
    head: MMFMTextLMHead,
    hidden: torch.Tensor,
    labels: torch.Tensor | None,
    sparse_prediction: bool = False,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """MLM loss (None without labels) and logits from (B, L, D) states.

    Dense by default: (B, L, V) logits, as transformers' masked LMs return them (what `Trainer`'s
    `compute_metrics` concatenates). With `sparse_prediction` and labels, the vocabulary projection runs on
    the scored positions only ((N, V) logits): the (B, L, V) tensor, the largest of MLM, never exists
    (ModernBERT's `sparse_prediction`); the training recipe uses it.
    """
    if labels is None:
        return None, head(hidden)
    if sparse_prediction:
        scored = labels != IGNORE_INDEX
        logits = head(hidden[scored])
        return masked_cross_entropy(logits, labels[scored], num_items_in_batch=num_items_in_batch), logits
    logits = head(hidden)
    flat = logits.reshape(-1, logits.shape[-1])
    return masked_cross_entropy(flat, labels.reshape(-1), num_items_in_batch=num_items_in_batch), logits


class MMFMTextForMaskedLM(MMFMPreTrainingMixin, MMFMTextPreTrainedModel):
    """Text encoder with BERT's masked-LM head, tied to the input embeddings. Needs bidirectional
    attention (`is_causal=False`)."""

    objective_name = "mlm"
    objective_config_class = MaskedLMConfig
    encoder_requirements: ClassVar[dict] = {"is_causal": False}
    auto_classes = ("AutoModelForMaskedLM", "AutoModelForPreTraining")
    _auto_class = "AutoModelForMaskedLM"
    # `Trainer` passes `num_items_in_batch` to models that take it (correct loss under accumulation).
    accepts_loss_kwargs = True
    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "mlm_head.decoder.weight": "encoder.embeddings.word_embeddings.weight"
    }

    def __init__(self, config: MMFMTextConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
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
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        sparse_prediction: bool = False,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMTextMaskedLMOutput:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(B, L)`): token ids, some masked or replaced.
            attention_mask (`torch.Tensor` of shape `(B, L)`, *optional*): 1 for real tokens, 0 for padding.
            labels (`torch.LongTensor` of shape `(B, L)`, *optional*): the original id at the positions to
                predict, -100 elsewhere (as `DataCollatorForMaskedLM` makes them).
            position_ids (`torch.LongTensor` of shape `(B, L)`, *optional*), inputs_embeds (`torch.FloatTensor`
                of shape `(B, L, D)`, *optional*, instead of `input_ids`): see [`MMFMTextModel`].
            sparse_prediction (`bool`): with `labels`, project only the scored positions onto the vocabulary
                (`(N, V)` logits; faster, less memory).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): scored tokens of the whole accumulated
                step; the loss is then their summed cross-entropy divided by it.
        """
        if labels is not None:
            valid = (0, self.config.vocab_size) if self.config.validate_inputs else None
            check_labels(
                "labels", labels, token_shape(input_ids, inputs_embeds), valid, self.encoder.input_device()
            )
        outputs = self.encoder(
            input_ids, attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        loss, logits = masked_lm(
            self.mlm_head, outputs.last_hidden_state, labels, sparse_prediction, num_items_in_batch
        )
        return MMFMTextMaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )  # fmt: skip


__all__ = [
    "IGNORE_INDEX",
    "MMFMTextForMaskedLM",
    "MMFMTextLMHead",
    "MMFMTextMaskedLMOutput",
    "MaskedLMConfig",
    "check_labels",
    "check_replacement_rates",
    "masked_lm",
    "token_shape",
]
