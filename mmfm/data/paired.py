"""Paired rows for contrastive binding of modalities (CLIP, SigLIP, ImageBind): the row convention, paired
demo subsets, and the collator that prepares every side of a batch of pairs.

The convention: a paired row holds, for each modality it carries, that modality's own input columns (its
`ModalitySpec.columns`: vision `image`; audio `audio` and optionally `sampling_rate`; graph `num_nodes`,
`edge_index` and optionally `node_features`; time series `past_values`) and, for text, a `text` column (or
another `text_column`). Other columns (a `label` for zero-shot evaluation) ride along and are not read.

    from mmfm.data import PairedRowCollator, load_paired_demo, paired_modalities
    rows = load_paired_demo("shapes_captions")              # image, label, text
    paired_modalities(rows.column_names)                    # ("text", "vision")
    collate = PairedRowCollator(processor, ("text", "vision"), where="tasks.clip")
    batch = collate([rows[i] for i in range(8)])            # batch["inputs"]["vision"]["pixel_values"]

The paired demo subsets are views of the demo corpus (`mmfm.data.demo`) made at load time: columns selected
and renamed, a seeded split where the source has none; nothing is written to disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from datasets import Dataset

from ..modalities import get_modality, modality_specs
from .bad_rows import BadRow, error_text, short_repr
from .batching import PROCESSING_ERRORS, SkippingCollator
from .demo import load_demo_dataset
from .demo.sources import TEST_FRACTION, subset_rng

logger = logging.getLogger(__name__)

PAIRED_SPLITS = ("train", "test")
# Seeds the 80/20 split of sources without a test split, and the image chosen for each spoken digit.
PAIRED_SEED = 0


def paired_modalities(column_names: Iterable[str], text_column: str = "text") -> tuple[str, ...]:
    """The modalities a table of paired rows carries (each has all its required columns), in canonical order.

    Args:
        column_names: the table's columns (e.g. `dataset.column_names`).
        text_column: the column holding the text side.
    """
    names = set(column_names)
    return tuple(
        modality
        for modality, spec in modality_specs().items()
        if all(column in names for column in spec.columns(text_column)[0])
    )


# ------------------------------------------------------------------------------------- paired demo subsets


@dataclass(frozen=True)
class PairedDemoSubset:
    """One paired demo subset.

    Attributes:
        description: one line saying what is paired with what.
        sources: the demo subsets (`modality/subset`) it is made from.
        modalities: the modalities its rows carry (canonical order).
        build: `(split, corpus root) -> Dataset` of the paired rows.
    """

    description: str
    sources: tuple[str, ...]
    modalities: tuple[str, ...]
    build: Callable[[str, str | os.PathLike | None], Dataset]


def _source_split(name: str, source: str, split: str, root: str | os.PathLike | None) -> Dataset:
    """Split `split` of demo subset `source`; a seeded 80/20 split of its rows when it has only `train`."""
    modality, subset = source.split("/")
    try:
        splits = load_demo_dataset(modality, subset, root=root)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"Paired demo subset {name!r} is made from demo subset {source}: {err}"
        ) from err
    if "test" in splits:
        return splits[split]
    rows = splits["train"]
    order = subset_rng(PAIRED_SEED, f"paired/{name}").permutation(rows.num_rows)
    num_test = round(rows.num_rows * TEST_FRACTION)
    return rows.select(np.sort(order[:num_test] if split == "test" else order[num_test:]))


def _columns_view(
    name: str, source: str, columns: Mapping[str, str], split: str, root: str | os.PathLike | None
) -> Dataset:
    """The source split's `columns` (source name -> paired name), renamed."""
    rows = _source_split(name, source, split, root).select_columns(list(columns))
    return rows.rename_columns({old: new for old, new in columns.items() if old != new})


def _spoken_digit_images(name: str, split: str, root: str | os.PathLike | None) -> Dataset:
    """Each spoken digit with an image of the same digit from the same split of vision/digits.

    Images are dealt to the clips of each digit from a seeded permutation of that digit's images, cycling when
    the clips outnumber them, so the pairing is fixed and spreads over all images. The label is the audio's
    (`zero`..`nine`; the same ids as vision/digits' `0`..`9`).
    """
    audio = _source_split(name, "audio/spoken_digits", split, root)
    audio = audio.select_columns(["audio", "sampling_rate", "label"])
    digits = _source_split(name, "vision/digits", split, root)
    image_labels = np.asarray(digits["label"])
    rng = subset_rng(PAIRED_SEED, f"paired/{name}/{split}")
    pools = {label: rng.permutation(np.flatnonzero(image_labels == label)) for label in range(10)}
    dealt = dict.fromkeys(pools, 0)
    picks = []
    for label in audio["label"]:
        pool = pools.get(label)
        if pool is None or not len(pool):
            raise ValueError(
                f"vision/digits has no {split} image of digit {label} to pair with a spoken digit."
            )
        picks.append(int(pool[dealt[label] % len(pool)]))
        dealt[label] += 1
    # The chosen images' undecoded cells, added as a column: no decoding, and nothing is written to disk (a
    # dataset with an indices mapping would be flattened into a cache file in the demo corpus folder).
    images = digits.select_columns(["image"]).with_format("arrow")[picks].column("image").combine_chunks()
    audio = audio.add_column("image", images, feature=digits.features["image"])
    return audio.select_columns(["audio", "sampling_rate", "image", "label"])


def _view(name: str, description: str, source: str, columns: dict[str, str]) -> PairedDemoSubset:
    modalities = paired_modalities(columns.values())
    return PairedDemoSubset(description, (source,), modalities, partial(_columns_view, name, source, columns))


_AUDIO = {"audio": "audio", "sampling_rate": "sampling_rate"}
_GRAPH = {"num_nodes": "num_nodes", "edge_index": "edge_index", "node_features": "node_features"}
PAIRED_DEMO_SUBSETS: dict[str, PairedDemoSubset] = {
    "shapes_captions": _view(
        "shapes_captions",
        "generated shape images with compositional captions (vision/shapes); label: first shape",
        "vision/shapes",
        {"image": "image", "caption": "text", "label": "label"},
    ),
    "digit_captions": _view(
        "digit_captions",
        "8x8 handwritten digits with 'a handwritten digit seven' captions (vision/digits); label: digit",
        "vision/digits",
        {"image": "image", "caption": "text", "label": "label"},
    ),
    "emoji_names": _view(
        "emoji_names",
        "Noto emoji images with their CLDR names (vision/emoji); seeded 80/20 split",
        "vision/emoji",
        {"image": "image", "caption": "text"},
    ),
    "spoken_digit_transcripts": _view(
        "spoken_digit_transcripts",
        "espeak-ng spoken digits with their one-word transcripts (audio/spoken_digits); label: digit",
        "audio/spoken_digits",
        {**_AUDIO, "transcript": "text", "label": "label"},
    ),
    "spoken_word_transcripts": _view(
        "spoken_word_transcripts",
        "espeak-ng spoken keywords with their transcripts (audio/spoken_words); label: word",
        "audio/spoken_words",
        {**_AUDIO, "transcript": "text", "label": "label"},
    ),
    "speech_captions": _view(
        "speech_captions",
        "espeak-ng spoken sentences with their transcripts (audio/speech_captions); seeded 80/20 split",
        "audio/speech_captions",
        {**_AUDIO, "transcript": "text"},
    ),
    "molecule_names": _view(
        "molecule_names",
        "molecule graphs with their IUPAC or drug names (graph/molecule_names); seeded 80/20 split",
        "graph/molecule_names",
        {**_GRAPH, "caption": "text"},
    ),
    "series_captions": _view(
        "series_captions",
        "generated series with captions of their trend, cycle, shifts and spikes (timeseries/captioned); "
        "label: trend",
        "timeseries/captioned",
        {"past_values": "past_values", "caption": "text", "label": "label"},
    ),
    "spoken_digit_images": PairedDemoSubset(
        "spoken digits paired with a handwritten image of the same digit, no text (for emergent alignment "
        "evaluation); label: digit",
        ("audio/spoken_digits", "vision/digits"),
        ("vision", "audio"),
        partial(_spoken_digit_images, "spoken_digit_images"),
    ),
}


def load_paired_demo(name: str, split: str = "train", root: str | os.PathLike | None = None) -> Dataset:
    """One split of a paired demo subset (`PAIRED_DEMO_SUBSETS`), made from the built demo corpus.

    Args:
        name: the paired subset (e.g. `"shapes_captions"`).
        split: `"train"` or `"test"` (the source's own splits, or a seeded 80/20 split where it has none).
        root: the demo corpus root (see `mmfm.data.demo.demo_corpus_dir`).

    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        FileNotFoundError: a source subset is not built (the message gives the build command).
    """
    if name not in PAIRED_DEMO_SUBSETS:
        raise ValueError(f"Unknown paired demo subset {name!r}; valid subsets: {list(PAIRED_DEMO_SUBSETS)}.")
    if split not in PAIRED_SPLITS:
        raise ValueError(
            f"Unknown split {split!r} of paired demo subset {name!r}; valid splits: {list(PAIRED_SPLITS)}."
        )
    return PAIRED_DEMO_SUBSETS[name].build(split, root)


# ----------------------------------------------------------------------------------------------- collator


class PairedRowCollator(SkippingCollator):
    """DataLoader `collate_fn`: a list of paired rows -> every side's processor outputs, bad pairs dropped.

    Returns a dict with `inputs` (`{modality: {name: tensor}}`, e.g. text `input_ids`/`attention_mask`
    (B, L) padded and truncated to `max_length`, vision `pixel_values` (B, C, H, W); None when no row is
    left), `num_rows`, `num_skipped` (pairs dropped, plus those counted before them by rows that carry
    `CARRIER_COLUMNS`) and `bad_rows` (a `BadRow` per pair this batch dropped; a carried description as a
    string). A pair is bad when any side is missing, None or refused by its processor: with
    `on_bad_sample="skip"` it is dropped and counted (the batch is processed whole first and retried row by
    row only when that fails); `"raise"` stops with a `ValueError` naming the row, column and value.

    Holds only the processor and plain values, so it pickles into DataLoader workers.

    Args:
        processor: an `MMFMProcessor` with a processor for each of `modalities`.
        modalities: the sides of each pair (e.g. `("text", "vision")`).
        where: the task's config section (`tasks.clip`) or its data section (`tasks.clip.data`), for
            messages (which name its `data.on_bad_sample`).
        text_column: the column holding the text side.
        max_length: longest text in tokens (longer ones are truncated); None: the tokenizer's
            `model_max_length`.
        on_bad_sample: `"skip"` or `"raise"`.
        processor_kwargs: per modality, options for its processor (e.g.
            `{"timeseries": {"truncation": True}}`).
    """

    def __init__(
        self,
        processor: Any,
        modalities: Sequence[str],
        where: str,
        text_column: str = "text",
        max_length: int | None = None,
        on_bad_sample: str = "skip",
        processor_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        if isinstance(modalities, str) or not modalities:
            raise ValueError(f"`modalities` must be a non-empty list of modality names, got {modalities!r}.")
        for modality in modalities:
            get_modality(modality)
            if modality not in processor.modalities:
                raise ValueError(
                    f"The processor has no {modality} processor (it has {processor.modalities}); build it "
                    "with one for each modality of the pairs."
                )
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"`modalities` names a modality twice: {list(modalities)}.")
        if on_bad_sample not in ("skip", "raise"):
            raise ValueError(f"`on_bad_sample` must be 'skip' or 'raise', got {on_bad_sample!r}.")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"`max_length` must be a positive int or None, got {max_length!r}.")
        unknown = sorted(set(processor_kwargs or {}) - set(modalities))
        if unknown:
            raise ValueError(
                f"`processor_kwargs` has options for {unknown}, not among the pairs' {list(modalities)}."
            )
        self.processor, self.modalities, self.where = processor, tuple(modalities), where
        self.text_column, self.max_length, self.on_bad_sample = text_column, max_length, on_bad_sample
        self.processor_kwargs = {m: dict(options) for m, options in (processor_kwargs or {}).items()}

    unit = "pair"

    def _screen(self, position: int, index: int | None, row: dict) -> BadRow | None:
        return self._missing_side(position, index, row)

    def _refuse(self, refused: list[BadRow], cause: BaseException | None) -> None:
        """With `on_bad_sample="raise"`, stop at the first bad pair."""
        if refused and self.on_bad_sample == "raise":
            section = self.where if self.where.endswith(".data") else f"{self.where}.data"
            raise ValueError(
                f"A batch of `{self.where}` holds a bad pair ({refused[0]}). Set `{section}.on_bad_sample=skip` "
                "to drop and count bad pairs instead."
            ) from cause

    def _side_columns(self, modality: str, row: Mapping[str, Any]) -> list[str]:
        required, optional = get_modality(modality).columns(self.text_column)
        return required + [column for column in optional if column in row]

    @staticmethod
    def _where(index: int | None) -> str | None:
        return f"dataset row {index}" if index is not None else None  # streams name the row later

    def _missing_side(self, position: int, index: int | None, row: Mapping[str, Any]) -> BadRow | None:
        """A `BadRow` when a required column of a side is absent or None (the pair has no such side)."""
        for modality in self.modalities:
            for column in get_modality(modality).columns(self.text_column)[0]:
                if column not in row:
                    error = f"no {modality} side: the row has no column {column!r} (columns: {sorted(row)})"
                    return BadRow(self._where(index), error, repr(column), None, batch_index=position)
                if row[column] is None:
                    error = f"no {modality} side: column {column!r} is None"
                    return BadRow(self._where(index), error, repr(column), "None", batch_index=position)
        return None

    def _error(self, row: dict) -> tuple[str, BaseException] | None:
        """(modality, error) of the first side whose processor refuses `row` alone; None if all accept it."""
        for modality in self.modalities:
            try:
                self._process_side(modality, [dict(row)])
            except PROCESSING_ERRORS as err:
                return modality, err
        return None

    def _describe(
        self, position: int, index: int | None, row: dict, error: tuple[str, BaseException]
    ) -> BadRow:
        modality, err = error
        columns = self._side_columns(modality, row)
        if len(columns) == 1:
            column, value = repr(columns[0]), row[columns[0]]
        else:
            column, value = repr(columns), {c: row[c] for c in columns}
        return BadRow(
            self._where(index),
            f"{modality}: {error_text(err)}",
            column,
            short_repr(value),
            batch_index=position,
        )

    def _process(self, rows: list[dict]) -> dict[str, dict[str, Any]]:
        return {modality: self._process_side(modality, rows) for modality in self.modalities}

    def _process_side(self, modality: str, rows: list[dict]) -> dict[str, Any]:
        """One side of a batch of pairs: the modality's row adapter, then its processor -> dict of tensors."""
        spec = get_modality(modality)
        columns = {column: [row[column] for row in rows] for column in self._side_columns(modality, rows[0])}
        items, kwargs = spec.row_adapter(columns, self.text_column)
        if spec.tokenized:  # padded (the processor's default for text) and cut to max_length
            kwargs = {**kwargs, "truncation": True, "verbose": False}
            if self.max_length is not None:
                kwargs["max_length"] = self.max_length
        kwargs = {**kwargs, **self.processor_kwargs.get(modality, {})}
        return dict(self.processor(**{modality: items, f"{modality}_kwargs": kwargs})[modality])


__all__ = [
    "PAIRED_DEMO_SUBSETS",
    "PairedDemoSubset",
    "PairedRowCollator",
    "load_paired_demo",
    "paired_modalities",
]
