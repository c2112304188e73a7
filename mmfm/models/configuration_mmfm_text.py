"""Configuration of the mmfm text encoder (model type `mmfm_text`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import (
    MMFMEncoderConfig,
    require_choice,
    require_open_fraction,
    require_positive_int,
)


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
        mlm_probability: fraction of the real, non-special tokens selected for masked language modeling
            (BERT, Devlin et al., 2019, sec. 3.1: 15%).
        mask_replace_prob: of the selected tokens, the fraction replaced by `[MASK]` (BERT: 80%).
        random_replace_prob: of the selected tokens, the fraction replaced by a random token (BERT: 10%);
            the rest (10%) are left unchanged but still predicted.
        whole_word_mask: select whole words rather than single subword pieces (BERT's whole word masking
            release), so all pieces of a word are masked together.
        substitution_probability: fraction of the real, non-special tokens replaced by a random other token
            for random token substitution (RTS, Di Liello et al., 2022, "Effective Pre-Training
            Objectives for Transformer-based Autoencoders", the first part of "Structural
            Self-Supervised Objectives for Transformers"; 15% as in the authors' reference code, the
            same rate as BERT's and ELECTRA's).
        (transformer fields: see `MMFMEncoderConfig`.)

    The objective fields record how a `*ForPreTraining` checkpoint was trained so continued pretraining
    can resume it with the same corruption; the masking itself happens in the collators of
    `mmfm.data.collators` (`DataCollatorForMaskedLM.from_config(tokenizer, config)`).
    """

    model_type = "mmfm_text"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_text.MMFMTextConfig",
        "AutoModel": "modeling_mmfm_text.MMFMTextModel",
        "AutoModelForPreTraining": "modeling_mmfm_text.MMFMTextForPreTraining",
        "AutoModelForMaskedLM": "modeling_mmfm_text.MMFMTextForMaskedLM",
        "AutoModelForCausalLM": "modeling_mmfm_text.MMFMTextForCausalLM",
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
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False
    substitution_probability: float = 0.15

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
        require_open_fraction(self, "mlm_probability", "substitution_probability")
        for name in ("mask_replace_prob", "random_replace_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"MMFMTextConfig.{name} must be in [0, 1], got {value!r}.")
        if self.mask_replace_prob + self.random_replace_prob > 1.0:
            raise ValueError(
                f"MMFMTextConfig.mask_replace_prob ({self.mask_replace_prob}) + random_replace_prob "
                f"({self.random_replace_prob}) must not exceed 1 (the rest of the selected tokens are kept)."
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"MMFMTextConfig.pad_token_id must be None or in [0, vocab_size={self.vocab_size}), "
                f"got {self.pad_token_id}."
            )


__all__ = ["MMFMTextConfig"]
