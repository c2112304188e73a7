"""Text packing: tokenized texts concatenated and cut into blocks of exactly `max_length` tokens."""

from __future__ import annotations

import itertools

from datasets import Dataset

from .bad_rows import BadRow, short_repr
from .sources import column_names


def pack_texts(rows, tokenizer, text_column: str, block: int, on_bad_sample: str, where: str):
    """Tokenize every text and cut the concatenation into blocks of exactly `block` tokens.

    Texts keep their special tokens ([CLS] ... [SEP]) so block boundaries inside a block stay visible,
    as in transformers' `run_mlm.py` `group_texts`. The tail shorter than one block is dropped (per
    1,000-text chunk). Empty or non-string texts are bad samples: counted in `num_skipped` (with
    `on_bad_sample="skip"`), with the first one's description in `skipped_rows` (as the JSON-lines reader's
    counts, which the blocks carry on), or an error naming the column.
    """
    streaming = not isinstance(rows, Dataset)

    def group(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        bad = [(i, t) for i, t in zip(indices, batch[text_column]) if not (isinstance(t, str) and t.strip())]
        texts = [t for t in batch[text_column] if isinstance(t, str) and t.strip()]
        if bad and on_bad_sample == "raise":
            raise ValueError(
                f"{len(bad)} empty or non-text value(s) in column {text_column!r} of `{where}.source` (the first: "
                f"row {bad[0][0]}, value {short_repr(bad[0][1])})."
            )
        # Bad lines of JSON files come as counts carried by rows (`mmfm.data.bad_rows.CARRIER_COLUMNS`).
        skipped = len(bad) + sum(int(n or 0) for n in batch.get("num_skipped", ()))
        first = next((d for d in batch.get("skipped_rows", ()) if d), "")
        if bad and not first:
            row = f"row {bad[0][0]} of the stream" if streaming else f"dataset row {bad[0][0]}"
            first = str(BadRow(row, "empty or not text", repr(text_column), short_repr(bad[0][1])))
        ids = (
            list(itertools.chain.from_iterable(tokenizer(texts, verbose=False)["input_ids"])) if texts else []
        )
        blocks = [ids[i : i + block] for i in range(0, len(ids) - block + 1, block)]
        if skipped and not blocks:
            blocks = [[]]  # an empty row carries the count; the collator drops it
        counts = [skipped] + [0] * (len(blocks) - 1) if blocks else []
        described = [first] + [""] * (len(blocks) - 1) if blocks else []
        return {"input_ids": blocks, "num_skipped": counts, "skipped_rows": described}

    kwargs = {"batched": True, "batch_size": 1000, "with_indices": True, "remove_columns": column_names(rows)}
    if isinstance(rows, Dataset):
        kwargs["desc"] = f"packing {where} into {block}-token blocks"
    return rows.map(group, **kwargs)


__all__ = ["pack_texts"]
