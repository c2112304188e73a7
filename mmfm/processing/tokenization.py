"""Train a subword tokenizer with `tokenizers` and wrap it for transformers.

The result is a plain `PreTrainedTokenizerFast`, so a saved tokenizer (`tokenizer.json`,
`tokenizer_config.json`) loads with `AutoTokenizer.from_pretrained` with or without mmfm installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
TOKENIZER_MODELS = ("wordpiece", "bpe")


def _batches(texts: Iterable[str], batch_size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"`texts` must yield strings, got {type(text).__name__}.")
        batch.append(text)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 8000,
    model: str = "wordpiece",
    min_frequency: int = 2,
    lowercase: bool = True,
    model_max_length: int = 512,
    batch_size: int = 1000,
) -> PreTrainedTokenizerFast:
    """Train a BERT-style tokenizer (`[CLS] text [SEP]`) on an iterable of strings.

    Args:
        texts: the training corpus, one document or sentence per item.
        vocab_size: size of the vocabulary, special tokens included.
        model: `"wordpiece"` (BERT-style, `##` continuation) or `"bpe"` (byte-level BPE, GPT-2-style
            pre-tokenisation; no unknown tokens).
        min_frequency: merges or pieces seen fewer times are not added.
        lowercase: lowercase and strip accents before tokenising (WordPiece only).
        model_max_length: stored on the tokenizer; `truncation=True` cuts to it.
        batch_size: texts per batch handed to the trainer.

    Returns:
        A `PreTrainedTokenizerFast` with `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]` special tokens.
    """
    if isinstance(texts, str | bytes):
        # A string is an iterable of characters: training on it would silently learn a character vocabulary.
        raise TypeError(
            f"`texts` must be an iterable of strings (one document per item), got a single {type(texts).__name__}; "
            "wrap it in a list."
        )
    if model not in TOKENIZER_MODELS:
        raise ValueError(f"`model` must be one of {TOKENIZER_MODELS}, got {model!r}.")
    specials = list(SPECIAL_TOKENS.values())
    if vocab_size <= len(specials):
        raise ValueError(f"`vocab_size` must exceed the {len(specials)} special tokens, got {vocab_size}.")

    if model == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
        )
    else:
        tokenizer = Tokenizer(models.BPE(unk_token=None))
        tokenizer.normalizer = normalizers.NFC()
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )

    n_texts = 0

    def counted(texts_in: Iterable[str]) -> Iterator[list[str]]:
        nonlocal n_texts
        for batch in _batches(texts_in, batch_size):
            n_texts += len(batch)
            yield batch

    tokenizer.train_from_iterator(counted(texts), trainer=trainer)
    if n_texts == 0:
        raise ValueError("`texts` is empty: a tokenizer needs at least one training text.")

    if model == "wordpiece":
        # The WordPiece trainer (Rust hash maps) orders tokens of equal frequency differently from run to
        # run; renumbering them alphabetically makes the ids depend only on the learned vocabulary. Ties
        # exactly at the vocabulary cut-off can still change which tokens are kept on a small corpus.
        specials = list(SPECIAL_TOKENS.values())
        ordered = specials + sorted(t for t in tokenizer.get_vocab() if t not in specials)
        tokenizer.model = models.WordPiece(
            vocab={token: i for i, token in enumerate(ordered)}, unk_token=SPECIAL_TOKENS["unk_token"]
        )

    cls_id = tokenizer.token_to_id(SPECIAL_TOKENS["cls_token"])
    sep_id = tokenizer.token_to_id(SPECIAL_TOKENS["sep_token"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, **SPECIAL_TOKENS
    )
