"""Tokenizer training with `tokenizers`, wrapped for transformers."""

import pydoc_data.topics

import pytest
from transformers import AutoTokenizer

from mmfm.processing import train_tokenizer

CORPUS = list(pydoc_data.topics.topics.values())


@pytest.mark.parametrize("model", ["wordpiece", "bpe"])
def test_trained_tokenizer_round_trips_through_auto_tokenizer(model, tmp_path):
    tokenizer = train_tokenizer(CORPUS, vocab_size=1500, model=model)
    assert len(tokenizer) == 1500
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    encoded = tokenizer("The for statement iterates over a sequence.")
    assert (
        encoded["input_ids"][0] == tokenizer.cls_token_id
        and encoded["input_ids"][-1] == tokenizer.sep_token_id
    )
    assert "statement" in tokenizer.decode(encoded["input_ids"]).lower()
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert (
        reloaded("The for statement iterates.")["input_ids"]
        == tokenizer("The for statement iterates.")["input_ids"]
    )
    assert reloaded.mask_token == "[MASK]" and reloaded.pad_token_id == 0


def test_wordpiece_ids_do_not_depend_on_the_trainers_tie_order():
    vocab = train_tokenizer(CORPUS, vocab_size=1500).get_vocab()
    by_id = sorted(vocab, key=vocab.get)
    assert by_id[5:] == sorted(by_id[5:])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"texts": []}, ValueError, "empty"),
        ({"texts": CORPUS, "model": "unigram"}, ValueError, "model"),
        ({"texts": CORPUS, "vocab_size": 3}, ValueError, "vocab_size"),
        ({"texts": [b"bytes"]}, TypeError, "strings"),
    ],
)
def test_bad_training_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        train_tokenizer(**kwargs)
