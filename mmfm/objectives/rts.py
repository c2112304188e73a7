"""Random token substitution (Di Liello et al., 2022): find the 15% of tokens replaced by random ones."""

from ..data.collators import DataCollatorForTokenSubstitution
from ..models import MMFMTextForPreTraining
from .registry import Objective

OBJECTIVE = Objective(
    name="rts",
    model_class=MMFMTextForPreTraining,
    description="random token substitution: classify which 15% of tokens were replaced by random ones",
    collator=DataCollatorForTokenSubstitution.from_config,
    evaluation=({"subset": "sentiment"}, {"subset": "newsgroups"}),
)
