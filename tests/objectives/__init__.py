"""Tests of the objectives: collators' corruption statistics and each loss against a slow reference.

`text_tokenizer` and `text_examples` are shared with `tests/models/test_text_pretraining.py`.
"""

from functools import cache
from pydoc_data.topics import topics


@cache
def text_tokenizer(model: str = "wordpiece", vocab_size: int = 1000):
    """A tokenizer trained on Python's own help texts (in the standard library, no network), with
    [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4."""
    from mmfm.processing.tokenization import train_tokenizer

    return train_tokenizer(sorted(topics.values()), vocab_size=vocab_size, model=model)


def text_examples(tokenizer, count: int = 8, max_length: int = 48, **kwargs) -> list[dict]:
    """`count` tokenized help texts of varied lengths (each at most `max_length` tokens)."""
    texts = [topics[key] for key in sorted(topics)[:count]]
    examples = []
    for i, text in enumerate(texts):
        length = max_length - 3 * (i % 5)
        examples.append(dict(tokenizer(text, truncation=True, max_length=length, **kwargs)))
    return examples
