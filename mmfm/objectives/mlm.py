"""Masked language modeling (BERT, Devlin et al., 2019): 15% of tokens selected, 80/10/10 corruption."""

from ..data.collators import DataCollatorForMaskedLM
from ..models import MMFMTextForMaskedLM
from .registry import Objective

OBJECTIVE = Objective(
    name="mlm",
    model_class=MMFMTextForMaskedLM,
    description="masked language modeling (BERT): predict 15% of tokens, 80% [MASK] / 10% random / 10% kept",
    collator=DataCollatorForMaskedLM.from_config,
    evaluation=({"subset": "sentiment"}, {"subset": "newsgroups"}),
    # The vocabulary projection on the masked positions only: the (B, L, V) logits never exist.
    train_kwargs={"sparse_prediction": True},
)
