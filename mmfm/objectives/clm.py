"""Causal language modeling (GPT, Radford et al., 2018): every position predicts the next token."""

from ..data.collators import DataCollatorForCausalLM
from ..models import MMFMTextForCausalLM
from .registry import Objective

OBJECTIVE = Objective(
    name="clm",
    model_class=MMFMTextForCausalLM,
    description="causal language modeling (GPT): next-token prediction with causal attention",
    collator=lambda tokenizer, objective_config: DataCollatorForCausalLM(tokenizer),
    encoder_defaults={"pooling": "last"},
    evaluation=({"subset": "sentiment"}, {"subset": "newsgroups"}),
)
