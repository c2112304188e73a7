"""Collators of the text objectives: pad tokenized examples and corrupt them reproducibly.

Three objectives, one collator each:

- `DataCollatorForMaskedLM`: BERT's masked language modeling (Devlin et al., 2019): 15% of the real,
  non-special tokens are selected; of those 80% become `[MASK]`, 10% a random token, 10% stay; the
  labels hold the original id at the selected positions. Optional whole word masking.
- `DataCollatorForCausalLM`: padding only; the labels are the inputs with padding at -100 (the model
  shifts them).
- `DataCollatorForTokenSubstitution`: random token substitution (RTS, Di Liello et al., 2022): 15% of the
  real, non-special tokens are replaced by a random *other* token; the labels say which (1) were.

All randomness is drawn on the CPU from one `torch.Generator` (`generator=` or `seed=`), with tensors of
the batch's shape, so the same seed and the same examples give exactly the same batch. The corruption
itself is in plain functions (`select_tokens`, `mask_tokens`, `substitute_tokens`) that work on padded
tensors, for use outside the collators and for tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------------------------
# Corruption on padded tensors
# ----------------------------------------------------------------------------------------------


def check_probability(value: Any, field: str) -> float:
    """`ValueError` naming `field` unless 0 < value < 1; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError(f"`{field}` must be strictly between 0 and 1, got {value!r}.")
    return float(value)


def word_starts(maskable: torch.Tensor, continuation: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: maskable tokens that begin a word, i.e. that are not a continuation piece or that
    follow a token that cannot be masked (a special token, padding or the start of the sequence).

    Args:
        maskable: (B, L) bool, real non-special tokens.
        continuation: (B, L) bool, True for a piece that continues the word of the token before it.
    """
    previous_maskable = torch.nn.functional.pad(maskable[:, :-1], (1, 0), value=False)
    return maskable & (~continuation | ~previous_maskable)


def continuation_from_word_ids(word_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) bool continuation flags from (B, L) word indices (-1 where a token has no word): a token
    continues a word when it has the same word index as the token before it."""
    previous = torch.nn.functional.pad(word_ids[:, :-1], (1, 0), value=-1)
    return (word_ids >= 0) & (word_ids == previous)


def select_tokens(
    maskable: torch.Tensor,
    probability: float,
    generator: torch.Generator | None = None,
    starts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Select each maskable token, or each whole word, independently with `probability` (Bernoulli, as
    in transformers' `DataCollatorForLanguageModeling`).

    Args:
        maskable: (B, L) bool, tokens that may be selected.
        probability: selection rate in (0, 1).
        generator: CPU generator for the (B, L) uniform draw.
        starts: (B, L) bool word starts (`word_starts`) for whole word selection: a word is selected
            with `probability` and then all of its pieces (up to the next start or unmaskable token) are.

    Returns:
        (B, L) bool, True where a token is selected (never outside `maskable`).
    """
    probability = check_probability(probability, "probability")
    draw = torch.rand(tuple(maskable.shape), generator=generator) < probability
    if starts is None:
        return draw & maskable
    # Each start token opens a word group; a word is selected when its start token drew True.
    group = torch.cumsum(starts.long(), dim=1)
    chosen = torch.zeros(maskable.shape[0], maskable.shape[1] + 1, dtype=torch.long)
    chosen.scatter_add_(1, group, (draw & starts).long())
    return (chosen.gather(1, group) > 0) & maskable & (group > 0)


def _random_tokens(shape, candidates: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return candidates[torch.randint(len(candidates), shape, generator=generator)]


def mask_tokens(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    mask_token_id: int,
    candidates: torch.Tensor,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of the selected tokens: `mask_replace_prob` of them become `[MASK]`,
    `random_replace_prob` a token drawn uniformly from `candidates` (as in BERT, it may equal the
    original), the rest stay unchanged. The choice is made per token, also under whole word masking (as in
    BERT's reference `create_pretraining_data.py`).

    Args:
        input_ids: (B, L) token ids (not modified).
        selected: (B, L) bool, the tokens to predict.
        candidates: (K,) token ids random replacements are drawn from (the non-special vocabulary).

    Returns:
        The corrupted (B, L) ids, and (B, L) labels: the original id where selected, -100 elsewhere.
    """
    shape = tuple(input_ids.shape)
    # One uniform per token decides its fate: [0, p_mask) -> [MASK], [p_mask, p_mask + p_random) -> random.
    decision = torch.rand(shape, generator=generator)
    to_mask = selected & (decision < mask_replace_prob)
    corrupted = input_ids.masked_fill(to_mask, mask_token_id)
    if random_replace_prob > 0:
        to_random = (
            selected & (decision >= mask_replace_prob) & (decision < mask_replace_prob + random_replace_prob)
        )
        corrupted = torch.where(to_random, _random_tokens(shape, candidates, generator), corrupted)
    labels = input_ids.masked_fill(~selected, IGNORE_INDEX)
    return corrupted, labels


def substitute_tokens(
    input_ids: torch.Tensor,
    selected: torch.Tensor,
    maskable: torch.Tensor,
    candidates: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token substitution (Di Liello et al., 2022): every selected token is replaced by a token
    drawn uniformly from `candidates` *other than the original*, so label 1 always means "changed".

    Args:
        input_ids: (B, L) token ids (not modified); selected ids must be in `candidates`.
        selected: (B, L) bool, the tokens to replace (within `maskable`).
        maskable: (B, L) bool, the tokens that get a label (the others get -100).
        candidates: (K,) sorted token ids, K >= 2.

    Returns:
        The corrupted (B, L) ids, and (B, L) labels: 1 replaced, 0 kept, -100 outside `maskable`.
    """
    shape = tuple(input_ids.shape)
    # Draw among K - 1 candidates and skip over the original's own index: uniform over the others.
    draw = torch.randint(len(candidates) - 1, shape, generator=generator)
    own_index = torch.searchsorted(candidates, input_ids.clamp(min=0))
    draw = draw + (draw >= own_index).long()
    replaced = torch.where(selected, candidates[draw], input_ids)
    labels = torch.where(maskable, selected.long(), torch.full_like(input_ids, IGNORE_INDEX))
    return replaced, labels


# ----------------------------------------------------------------------------------------------
# Collators
# ----------------------------------------------------------------------------------------------


def _as_id_list(value: Any, field: str, index: int) -> list[int]:
    if isinstance(value, torch.Tensor):
        if value.dim() != 1:
            raise ValueError(
                f"Example {index}: `{field}` must be one sequence (1 dim), got shape {tuple(value.shape)}."
            )
        return [int(v) for v in value.tolist()]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"Example {index}: `{field}` must be a list of ints, got {type(value).__name__}.")
    if any(isinstance(v, (list, tuple)) for v in value):
        raise ValueError(f"Example {index}: `{field}` must be one sequence of ints, got nested lists.")
    return [int(v) for v in value]


class _TextCollator:
    """Padding, validation and the seeded generator shared by the text collators."""

    def __init__(
        self,
        tokenizer,
        pad_to_multiple_of: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        if generator is not None and seed is not None:
            raise ValueError("Pass either `generator` or `seed`, not both.")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"`seed` must be an int, got {type(seed).__name__}.")
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of < 1
        ):
            raise ValueError(
                f"`pad_to_multiple_of` must be a positive int or None, got {pad_to_multiple_of!r}."
            )
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "The tokenizer has no pad token (`tokenizer.pad_token_id` is None), so examples of different "
                "lengths cannot be batched; set one, e.g. `tokenizer.pad_token = tokenizer.eos_token`."
            )
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.seed = seed
        self.generator = generator
        self._generator_pid = os.getpid() if generator is not None else None
        self.vocab_size = len(tokenizer)
        special = sorted(set(tokenizer.all_special_ids))
        is_special = torch.zeros(self.vocab_size, dtype=torch.bool)
        is_special[[i for i in special if 0 <= i < self.vocab_size]] = True
        self.is_special = is_special
        # Random replacements are drawn from the ordinary (non-special) vocabulary, sorted.
        self.candidates = (~is_special).nonzero().flatten()

    # -- randomness ------------------------------------------------------------------------------

    def _get_generator(self, generator: torch.Generator | None) -> torch.Generator | None:
        """The generator of this call: the one passed, else the collator's (created from `seed` on first
        use in each process; a DataLoader worker uses seed + worker id, so workers draw different masks
        while each stays reproducible), else None (torch's global RNG)."""
        if generator is not None:
            return generator
        worker = torch.utils.data.get_worker_info()
        if self.seed is not None and (self.generator is None or self._generator_pid != os.getpid()):
            self.generator = torch.Generator().manual_seed(
                self.seed + (worker.id if worker is not None else 0)
            )
            self._generator_pid = os.getpid()
        elif self.generator is not None and worker is not None and self._generator_pid != os.getpid():
            logger.warning(
                "A collator built with `generator=` runs in DataLoader worker %d: every worker starts from the "
                "same generator state and draws the same masks. Build the collator with `seed=` instead.",
                worker.id,
            )
            self._generator_pid = os.getpid()
        return self.generator

    # -- padding ---------------------------------------------------------------------------------

    def _read_example(self, example: Any, index: int, with_word_ids: bool):
        """One example as lists: ids, attention mask, special-token mask and word ids (or None)."""
        if not isinstance(example, Mapping):
            example = {"input_ids": example}
        if "input_ids" not in example:
            raise ValueError(f"Example {index} has no `input_ids`; keys: {sorted(example)}.")
        ids = _as_id_list(example["input_ids"], "input_ids", index)
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError(
                f"Example {index}: `input_ids` must lie in [0, {self.vocab_size}) (the tokenizer's "
                f"vocabulary), got values in [{min(ids)}, {max(ids)}]."
            )
        fields = {}
        for field in ("attention_mask", "special_tokens_mask"):
            values = example.get(field)
            default = 1 if field == "attention_mask" else 0
            fields[field] = [default] * len(ids) if values is None else _as_id_list(values, field, index)
        words = example.get("word_ids") if with_word_ids else None
        if words is not None:
            fields["word_ids"] = words = [-1 if w is None else int(w) for w in words]
        for field, values in fields.items():
            if len(values) != len(ids):
                raise ValueError(
                    f"Example {index}: `{field}` has length {len(values)} but `input_ids` has {len(ids)}."
                )
        return ids, fields["attention_mask"], fields["special_tokens_mask"], words

    def _pad(self, examples: Sequence[Any], with_word_ids: bool = False) -> dict[str, torch.Tensor]:
        """Pad examples to (B, L) `input_ids` and `attention_mask`, plus `maskable` (real, non-special
        tokens) and, when asked and given, `word_ids` (-1 where a token has no word)."""
        if isinstance(examples, Mapping) or not isinstance(examples, Sequence) or len(examples) == 0:
            raise ValueError("The collator needs a non-empty list of tokenized examples.")
        rows = [self._read_example(example, index, with_word_ids) for index, example in enumerate(examples)]
        if all(sum(1 for m in mask if m) == 0 for _, mask, _, _ in rows):
            raise ValueError(
                "All-padding batch: no example has a real token (empty `input_ids` or an all-zero "
                "`attention_mask`). Drop empty examples before batching."
            )
        length = max(len(ids) for ids, _, _, _ in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch_size = len(rows)
        input_ids = torch.full((batch_size, length), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((batch_size, length), dtype=torch.long)
        special_mask = torch.ones((batch_size, length), dtype=torch.bool)
        has_words = with_word_ids and any(words is not None for *_, words in rows)
        if has_words and any(words is None for *_, words in rows):
            raise ValueError("Either every example or none must carry `word_ids`.")
        word_ids = torch.full((batch_size, length), -1, dtype=torch.long)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for row, (ids, mask, special, words) in enumerate(rows):
            span = slice(length - len(ids), length) if left else slice(0, len(ids))
            input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, span] = torch.tensor(mask, dtype=torch.long).clamp(max=1)
            special_mask[row, span] = torch.tensor(special, dtype=torch.bool)
            if words is not None:
                word_ids[row, span] = torch.tensor(words, dtype=torch.long)
        maskable = attention_mask.bool() & ~special_mask & ~self.is_special[input_ids]
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "maskable": maskable}
        if has_words:
            batch["word_ids"] = word_ids
        return batch

    @staticmethod
    def _require_maskable(maskable: torch.Tensor, what: str) -> None:
        short = (~maskable.any(dim=1)).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"Example(s) {short} are too short to {what} anything: they have no real token that is not "
                "a special token. Drop or merge such examples before batching (e.g. pack short texts)."
            )


class _WholeWordMixin:
    """Word boundaries for whole word selection: from the examples' `word_ids` when given (a fast
    tokenizer's `encoding.word_ids()`), else from the vocabulary's word markers."""

    def _init_word_boundaries(self, tokenizer, enabled: bool) -> None:
        self.whole_word_mask = bool(enabled)
        self.continuation_table = vocabulary_continuation_table(tokenizer) if enabled else None

    def _starts(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.whole_word_mask:
            return None
        if "word_ids" in batch:
            continuation = continuation_from_word_ids(batch["word_ids"])
        elif self.continuation_table is not None:
            continuation = self.continuation_table[batch["input_ids"]]
        else:
            raise ValueError(
                "whole_word_mask=True, but the tokenizer's word boundaries cannot be read from its "
                "vocabulary (not WordPiece '##', byte-level 'Ġ' or SentencePiece '▁' markers). Give each "
                "example its `word_ids` (from a fast tokenizer: `encoding.word_ids()`)."
            )
        return word_starts(batch["maskable"], continuation)


def vocabulary_continuation_table(tokenizer) -> torch.Tensor | None:
    """(V,) bool, True for vocabulary pieces that continue a word, read from the tokenizer's markers:
    WordPiece continuation prefix (`##`), byte-level BPE's word-start `Ġ`, SentencePiece's word-start `▁`.
    None when the tokenizer has no such markers (then examples must carry `word_ids`)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    prefix = getattr(backend.model, "continuing_subword_prefix", None)
    if prefix:
        return torch.tensor([t is not None and t.startswith(prefix) for t in tokens], dtype=torch.bool)
    pre_tokenizer = str(backend.pre_tokenizer)
    marker = "Ġ" if "ByteLevel" in pre_tokenizer else "▁" if "Metaspace" in pre_tokenizer else None
    if marker is None:
        return None
    return torch.tensor([t is not None and not t.startswith(marker) for t in tokens], dtype=torch.bool)


class DataCollatorForMaskedLM(_WholeWordMixin, _TextCollator):
    """Pad tokenized examples and apply BERT's masking (Devlin et al., 2019).

    Of the real, non-special tokens each is selected with `mlm_probability`; a selected token becomes
    `[MASK]` with `mask_replace_prob`, a random non-special token with `random_replace_prob` (it may
    equal the original, as in BERT), and stays unchanged otherwise. Special tokens and padding are never
    selected.

    Args:
        tokenizer: a transformers tokenizer with a mask token and a pad token.
        mlm_probability: selection rate, in (0, 1).
        mask_replace_prob, random_replace_prob: split of the selected tokens (sum at most 1).
        whole_word_mask: select whole words, so all pieces of a word are masked together; each word is
            selected with `mlm_probability`. Word boundaries come from each example's `word_ids` when
            present (a fast tokenizer's `encoding.word_ids()`), else from the vocabulary's markers
            (WordPiece `##` continuation pieces; byte-level BPE `Ġ` and SentencePiece `▁` word starts,
            where punctuation glued to a word counts as part of it).
        pad_to_multiple_of: pad the length to a multiple of this.
        generator, seed: randomness; the same seed and examples give exactly the same batch.

    Call it on a list of examples: dicts with `input_ids` (list of ints or 1-D tensor) and optionally
    `attention_mask`, `special_tokens_mask` and `word_ids` (other keys are not used), or bare lists of
    ids. Returns `input_ids` (B, L) corrupted, `attention_mask` (B, L) and `labels` (B, L): the original
    id at the selected positions, -100 elsewhere. `generator=` on the call overrides the collator's.
    """

    def __init__(
        self,
        tokenizer,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        whole_word_mask: bool = False,
        pad_to_multiple_of: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        super().__init__(tokenizer, pad_to_multiple_of, generator, seed)
        if tokenizer.mask_token is None or tokenizer.mask_token_id is None:
            raise ValueError(
                "The tokenizer has no mask token (`tokenizer.mask_token` is None), which masked language "
                "modeling needs. Add one (e.g. `tokenizer.add_special_tokens({'mask_token': '[MASK]'})` and "
                "resize the model's embeddings), or use DataCollatorForTokenSubstitution / "
                "DataCollatorForCausalLM, which need none."
            )
        self.mlm_probability = check_probability(mlm_probability, "mlm_probability")
        for name, value in (
            ("mask_replace_prob", mask_replace_prob),
            ("random_replace_prob", random_replace_prob),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
        if mask_replace_prob + random_replace_prob > 1.0:
            raise ValueError(
                f"`mask_replace_prob` ({mask_replace_prob}) + `random_replace_prob` ({random_replace_prob}) "
                "must not exceed 1; the rest of the selected tokens are left unchanged."
            )
        if random_replace_prob > 0 and len(self.candidates) == 0:
            raise ValueError("The tokenizer has no non-special token to draw random replacements from.")
        self.mask_replace_prob = float(mask_replace_prob)
        self.random_replace_prob = float(random_replace_prob)
        self.mask_token_id = tokenizer.mask_token_id
        self._init_word_boundaries(tokenizer, whole_word_mask)

    @classmethod
    def from_config(cls, tokenizer, config, **kwargs) -> DataCollatorForMaskedLM:
        """The collator of the masking a `MaskedLMConfig` records (`model.objective` of an
        `MMFMTextForMaskedLM`): `mlm_probability`, `mask_replace_prob`, `random_replace_prob`,
        `whole_word_mask`; `kwargs` override."""
        fields = {
            name: getattr(config, name)
            for name in ("mlm_probability", "mask_replace_prob", "random_replace_prob", "whole_word_mask")
        }
        return cls(tokenizer, **{**fields, **kwargs})

    def __call__(
        self, examples: Sequence[Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        batch = self._pad(examples, with_word_ids=self.whole_word_mask)
        self._require_maskable(batch["maskable"], "mask")
        generator = self._get_generator(generator)
        selected = select_tokens(batch["maskable"], self.mlm_probability, generator, self._starts(batch))
        input_ids, labels = mask_tokens(
            batch["input_ids"],
            selected,
            self.mask_token_id,
            self.candidates,
            self.mask_replace_prob,
            self.random_replace_prob,
            generator,
        )
        return {"input_ids": input_ids, "attention_mask": batch["attention_mask"], "labels": labels}


class DataCollatorForCausalLM(_TextCollator):
    """Pad tokenized examples for next-token prediction (GPT): `labels` are the `input_ids` with -100 on
    padding (read from the attention mask, so a pad token that doubles as end-of-text is still learned
    where it is real); the model shifts them. Nothing is random.

    Args:
        tokenizer: a transformers tokenizer with a pad token.
        pad_to_multiple_of: pad the length to a multiple of this.

    Every example needs at least 2 real tokens (one to read, one to predict).
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        super().__init__(tokenizer, pad_to_multiple_of)

    def __call__(self, examples: Sequence[Any]) -> dict[str, torch.Tensor]:
        batch = self._pad(examples)
        lengths = batch["attention_mask"].sum(dim=1)
        short = (lengths < 2).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"Example(s) {short} are too short to predict anything: next-token prediction needs at least "
                "2 real tokens per example. Drop or merge such examples before batching."
            )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


class DataCollatorForTokenSubstitution(_WholeWordMixin, _TextCollator):
    """Pad tokenized examples and apply random token substitution (RTS, Di Liello et al., 2022,
    "Effective Pre-Training Objectives for Transformer-based Autoencoders").

    Each real, non-special token is replaced with `substitution_probability` (15% in the authors'
    reference code) by a token drawn uniformly from the non-special vocabulary, never the original
    itself. The model then tells, for each token, whether it was replaced.

    Args:
        tokenizer: a transformers tokenizer with a pad token and at least 2 non-special tokens.
        substitution_probability: replacement rate, in (0, 1).
        whole_word_mask: replace whole words (every piece of a selected word), as the authors' option
            `whole_word_detection`; word boundaries as in `DataCollatorForMaskedLM`.
        pad_to_multiple_of: pad the length to a multiple of this.
        generator, seed: randomness; the same seed and examples give exactly the same batch.

    Returns `input_ids` (B, L) corrupted, `attention_mask` (B, L) and `substitution_labels` (B, L):
    1 replaced, 0 kept, -100 on padding and special tokens.
    """

    def __init__(
        self,
        tokenizer,
        substitution_probability: float = 0.15,
        whole_word_mask: bool = False,
        pad_to_multiple_of: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ):
        super().__init__(tokenizer, pad_to_multiple_of, generator, seed)
        self.substitution_probability = check_probability(
            substitution_probability, "substitution_probability"
        )
        if len(self.candidates) < 2:
            raise ValueError(
                "Random token substitution needs at least 2 non-special tokens in the vocabulary, got "
                f"{len(self.candidates)}."
            )
        self._init_word_boundaries(tokenizer, whole_word_mask)

    @classmethod
    def from_config(cls, tokenizer, config, **kwargs) -> DataCollatorForTokenSubstitution:
        """The collator of the rate a `TokenSubstitutionConfig` records (`model.objective` of an
        `MMFMTextForPreTraining`): `substitution_probability`, `whole_word_mask`; `kwargs` override."""
        fields = {
            "substitution_probability": config.substitution_probability,
            "whole_word_mask": config.whole_word_mask,
        }
        return cls(tokenizer, **{**fields, **kwargs})

    def __call__(
        self, examples: Sequence[Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        batch = self._pad(examples, with_word_ids=self.whole_word_mask)
        self._require_maskable(batch["maskable"], "substitute")
        generator = self._get_generator(generator)
        selected = select_tokens(
            batch["maskable"], self.substitution_probability, generator, self._starts(batch)
        )
        input_ids, labels = substitute_tokens(
            batch["input_ids"], selected, batch["maskable"], self.candidates, generator
        )
        return {
            "input_ids": input_ids,
            "attention_mask": batch["attention_mask"],
            "substitution_labels": labels,
        }


__all__ = [
    "DataCollatorForCausalLM",
    "DataCollatorForMaskedLM",
    "DataCollatorForTokenSubstitution",
    "check_probability",
    "continuation_from_word_ids",
    "mask_tokens",
    "select_tokens",
    "substitute_tokens",
    "vocabulary_continuation_table",
    "word_starts",
]
