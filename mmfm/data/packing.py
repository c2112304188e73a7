"""Text packing: tokenized texts concatenated and cut into blocks of exactly `max_length` tokens."""

from __future__ import annotations

import itertools

from datasets import Dataset

from .sources import column_names


def pack_texts(rows, tokenizer, text_column: str, block: int, on_bad_sample: str, where: str):
    """Tokenize every text and cut the concatenation into blocks of exactly `block` tokens.

    Texts keep their special tokens ([CLS] ... [SEP]) so block boundaries inside a block stay visible,
    as in transformers' `run_mlm.py` `group_texts`. The tail shorter than one block is dropped (per
    1,000-text chunk). Empty or non-string texts are bad samples: counted in `num_skipped` (with
    `on_bad_sample="skip"`), or an error naming the column.
    """

    def group(batch: dict[str, list]) -> dict[str, list]:
        texts = [t for t in batch[text_column] if isinstance(t, str) and t.strip()]
        skipped = len(batch[text_column]) - len(texts)
        if skipped and on_bad_sample == "raise":
            raise ValueError(
                f"{skipped} empty or non-text value(s) in column {text_column!r} of `{where}.source`."
            )
        ids = (
            list(itertools.chain.from_iterable(tokenizer(texts, verbose=False)["input_ids"])) if texts else []
        )
        blocks = [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]
        if skipped and not blocks:
            blocks = [[]]  # an empty row carries the count; the collator drops it
        counts = [skipped] + [0] * (len(blocks) - 1) if blocks else []
        return {"input_ids": blocks, "num_skipped": counts}

    kwargs = {"batched": True, "batch_size": 1000, "remove_columns": column_names(rows)}
    if isinstance(rows, Dataset):
        kwargs["desc"] = f"packing {where} into {block}-token blocks"
    return rows.map(group, **kwargs)


__all__ = ["pack_texts"]
