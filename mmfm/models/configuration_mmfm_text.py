"""Configuration of the mmfm text encoder (model type `mmfm_text`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMEncoderConfig, require_choice, require_positive_int


class MMFMTextConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMTextModel`], a pre-norm transformer over token ids.

    Args:
        vocab_size: number of token ids (the demo tokenizer has 8,000).
        max_position_embeddings: longest sequence accepted; with learned positions it is also the size
            of the position table. Longer inputs are rejected, never truncated here.
        position_embedding_type: `"rotary"` (RoPE on queries and keys) or `"learned"` (absolute table).
        rotary_base: base of the RoPE frequencies.
        pad_token_id: id of the padding token (its embedding starts at zero).
        pooling: sentence embedding taken from the `"cls"` (first) token, the `"mean"` of real tokens, or
            the `"last"` real token (for causal models).
        is_causal: causal (left-to-right) attention, for generative pretraining.
        tie_word_embeddings: tie language-modeling heads to the input embeddings.
        (transformer fields and `pretraining_*`: see `MMFMEncoderConfig`; the text objectives' corruption
        rates live in `pretraining_config`.)
    """

    model_type = "mmfm_text"
    modality: ClassVar[str] = "text"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_text.MMFMTextConfig",
        "AutoModel": "modeling_mmfm_text.MMFMTextModel",
        "AutoModelForSequenceClassification": "modeling_mmfm_text.MMFMTextForSequenceClassification",
        "AutoModelForTokenClassification": "modeling_mmfm_text.MMFMTextForTokenClassification",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"vocab_size": 1000, "max_position_embeddings": 128}
    }

    vocab_size: int = 8000
    max_position_embeddings: int = 512
    position_embedding_type: str = "rotary"
    rotary_base: float = 10000.0
    pad_token_id: int | None = 0
    pooling: str = "cls"
    is_causal: bool = False
    tie_word_embeddings: bool = True

    def check_consistency(self) -> None:
        super().check_consistency()
        require_positive_int(self, "vocab_size", "max_position_embeddings")
        require_choice(self, "position_embedding_type", ("rotary", "learned"))
        require_choice(self, "pooling", ("cls", "mean", "last"))
        if self.position_embedding_type == "rotary" and self.head_dim % 2:
            raise ValueError(
                f"MMFMTextConfig: rotary positions need an even head dimension, got hidden_size "
                f"{self.hidden_size} / num_attention_heads {self.num_attention_heads} = {self.head_dim}."
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"MMFMTextConfig.pad_token_id must be None or in [0, vocab_size={self.vocab_size}), "
                f"got {self.pad_token_id}."
            )


__all__ = ["MMFMTextConfig"]
