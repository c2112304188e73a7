"""The text modality: token ids from a tokenizer; tokens count throughput."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from ..models import MMFMTextModel
from .spec import ModalitySpec, count_real


def build_processor(config, tokenizer: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
    """The tokenizer itself, checked against the configuration's vocabulary."""
    if tokenizer is None:
        raise ValueError("The configuration includes text: pass `tokenizer` (e.g. load_demo_tokenizer()).")
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the text config's vocab_size is {config.vocab_size}."
        )
    return tokenizer


def text_items(rows: dict[str, list], text_column: str) -> tuple[list[str], dict]:
    return list(rows[text_column]), {}


def count_tokens(inputs, config) -> int:
    return count_real(inputs, "input_ids")


SPEC = ModalitySpec(
    name="text",
    encoder_class=MMFMTextModel,
    processor_class=PreTrainedTokenizerBase,
    build_processor=build_processor,
    required_columns=("text",),
    row_adapter=text_items,
    unit="tokens",
    count_units=count_tokens,
    default_objective="rts",
    tokenized=True,
)
