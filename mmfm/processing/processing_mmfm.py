"""`MMFMProcessor`: one object that prepares inputs for any subset of mmfm's modalities, saved with the model.

Portable like the model files: this file imports only transformers, the standard library and its sibling
processor files (`from .x import y`), so saving copies it into the folder and `AutoProcessor.from_pretrained(
folder, trust_remote_code=True)` loads it where mmfm is not installed (notes/stack.md section 2). Only
`from_model_config`, which builds processors from mmfm's modality registry, needs mmfm (imported when called).

Layout of a saved folder (transformers 5's `ProcessorMixin` layout):
- one modality: that processor alone at the top level, as for any single-encoder checkpoint: the tokenizer
  (`tokenizer.json`, `tokenizer_config.json`) or `preprocessor_config.json` with its `auto_map` and code, so
  `AutoTokenizer` / `AutoImageProcessor` / `AutoFeatureExtractor` load it (and `AutoProcessor` falls back on
  them and returns that processor);
- several: the tokenizer at the top level, and `processor_config.json` with `processor_class`, `auto_map`
  (`AutoProcessor` -> this file), `modalities` (in order) and each other processor's settings under its
  attribute name (`SUB_PROCESSORS`). transformers' `AutoImageProcessor` reads `image_processor` and
  `AutoFeatureExtractor` reads `audio_processor` from it, so the zero-shot pipelines load a composite export.
Folders of earlier mmfm versions (a `mmfm_processor.json` index, one subfolder per extra modality) still load.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, BatchFeature, PreTrainedTokenizerBase
from transformers.dynamic_module_utils import custom_object_save
from transformers.processing_utils import ProcessorMixin
from transformers.utils import FEATURE_EXTRACTOR_NAME, PROCESSOR_NAME, cached_file

from .feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor
from .graph_processing_mmfm import MMFMGraphProcessor
from .image_processing_mmfm import MMFMImageProcessor
from .mmfm_processing_validation import describe
from .timeseries_processing_mmfm import MMFMTimeSeriesProcessor

# modality -> (ProcessorMixin attribute and `processor_config.json` key, processor class), in the order of
# mmfm's MODALITIES. Attribute names follow transformers: one containing `image_processor` is loaded by
# AutoImageProcessor, `audio_processor` / `feature_extractor` by AutoFeatureExtractor, `tokenizer` by
# AutoTokenizer. A new modality adds its processor here (tests check this table against mmfm's registry).
SUB_PROCESSORS: dict[str, tuple[str, type]] = {
    "text": ("tokenizer", PreTrainedTokenizerBase),
    "vision": ("image_processor", MMFMImageProcessor),
    "audio": (MMFMAudioFeatureExtractor.processor_config_key, MMFMAudioFeatureExtractor),
    "graph": (MMFMGraphProcessor.processor_config_key, MMFMGraphProcessor),
    "timeseries": (MMFMTimeSeriesProcessor.processor_config_key, MMFMTimeSeriesProcessor),
}
TOKENIZED = ("text",)
LEGACY_INDEX_NAME = "mmfm_processor.json"  # written by mmfm before processors became portable
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
# `from_pretrained` keywords that say where the files are; passed on to every sub-processor's loader.
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


class MMFMProcessor(ProcessorMixin):
    """Per-modality processors behind one call that returns the nested batch `MMFMModel` takes.

    Args:
        <modality>: the modality's processor, one keyword per modality (`text`: a tokenizer, e.g. from
            `mmfm.processing.train_tokenizer`; `vision`: an `MMFMImageProcessor`; `audio`: an
            `MMFMAudioFeatureExtractor`; `graph`: an `MMFMGraphProcessor`; `timeseries`: an
            `MMFMTimeSeriesProcessor`).

    Each processor is also the attribute transformers expects (`processor.tokenizer`,
    `processor.image_processor`, `processor.audio_processor`, ...; `SUB_PROCESSORS`).

    Example:
        processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
        batch = processor(text=["a red circle"], vision=[image])
        outputs = model(**batch)        # batch == {"text": {...}, "vision": {...}}
    """

    _auto_class = "AutoProcessor"

    def __init__(self, **processors: Any) -> None:
        # ProcessorMixin.__init__ wants every declared attribute; an MMFMProcessor holds any non-empty subset.
        self.chat_template = None
        unknown = sorted(set(processors) - set(SUB_PROCESSORS))
        if unknown:
            raise ValueError(f"Unknown modality name(s) {unknown}; modalities are {tuple(SUB_PROCESSORS)}.")
        self.processors: dict[str, Any] = {}
        for modality, (attribute, expected) in SUB_PROCESSORS.items():
            processor = processors.get(modality)
            if processor is None:
                continue
            if not _is_a(processor, expected):
                raise TypeError(
                    f"`{modality}` must be a {expected.__name__}, got {type(processor).__name__}."
                )
            self.processors[modality] = processor
            setattr(self, attribute, processor)
        if not self.processors:
            raise ValueError(
                f"MMFMProcessor needs a processor for at least one modality of {tuple(SUB_PROCESSORS)}."
            )

    @classmethod
    def get_attributes(cls) -> list[str]:
        """The sub-processor attributes an MMFMProcessor may hold (ProcessorMixin reads them off `__init__`'s
        argument names; ours are keyword arguments named by modality)."""
        return [attribute for attribute, _ in SUB_PROCESSORS.values()]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.processors)

    def __getitem__(self, modality: str) -> Any:
        if modality not in SUB_PROCESSORS:
            raise ValueError(f"Unknown modality {modality!r}; modalities are {tuple(SUB_PROCESSORS)}.")
        if modality not in self.processors:
            raise ValueError(f"This MMFMProcessor has no {modality} processor; it has {self.modalities}.")
        return self.processors[modality]

    # ----------------------------------------------------------------------------------------------------
    # Processing
    # ----------------------------------------------------------------------------------------------------

    def __call__(self, return_tensors: str | None = "pt", **inputs: Any) -> dict[str, BatchFeature]:
        """Process each given modality; returns `{modality: BatchFeature}` for `MMFMModel(**batch)`.

        Keywords: `<modality>=items` for each modality to process, and `<modality>_kwargs={...}` for that
        processor's options (e.g. `audio_kwargs={"sampling_rate": 16000}`,
        `text_kwargs={"truncation": True, "max_length": 128}`).
        """
        names = set(SUB_PROCESSORS) | {f"{m}_kwargs" for m in SUB_PROCESSORS}
        unknown = sorted(set(inputs) - names)
        if unknown:
            raise ValueError(
                f"Unknown modality or argument(s) {unknown}; modalities are {tuple(SUB_PROCESSORS)} (options go "
                "in `<modality>_kwargs`)."
            )
        batch = {}
        for modality in SUB_PROCESSORS:
            data = inputs.get(modality)
            if data is None:
                continue
            processor = self[modality]
            options = inputs.get(f"{modality}_kwargs") or {}
            if not isinstance(options, dict):
                raise TypeError(
                    f"`{modality}_kwargs` must be a dict of {type(processor).__name__} options (e.g. "
                    f"{{'return_attention_mask': True}}), got {describe(options)}."
                )
            kwargs = {"return_tensors": return_tensors, **options}
            if modality in TOKENIZED:
                batch[modality] = _tokenize(processor, data, kwargs)
            else:
                batch[modality] = processor(data, **kwargs)
        if not batch:
            raise ValueError(
                f"Pass inputs for at least one of this processor's modalities {self.modalities}."
            )
        return batch

    # ----------------------------------------------------------------------------------------------------
    # Saving and loading
    # ----------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """What `processor_config.json` holds: the class, the modalities in order and each non-text
        processor's settings under its attribute name (the tokenizer has its own files)."""
        output: dict[str, Any] = {"processor_class": type(self).__name__, "modalities": list(self.modalities)}
        if getattr(self, "auto_map", None):
            output["auto_map"] = dict(self.auto_map)
        for modality, processor in self.processors.items():
            if modality not in TOKENIZED:
                output[SUB_PROCESSORS[modality][0]] = processor.to_dict()
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> list[str]:
        """Save the processors (layout in the module docstring) with their code; returns the written paths.

        `kwargs` are accepted for `push_to_hub` (which passes its own saving options) and ignored.
        """
        if kwargs.pop("push_to_hub", False):
            raise ValueError(
                "`push_to_hub=True` is not supported here: call `processor.push_to_hub(repo_id)`."
            )
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        if len(self.processors) == 1:
            (processor,) = self.processors.values()
            return [str(path) for path in processor.save_pretrained(folder) or []]
        written: list[str] = []
        if self._auto_class is not None:
            # Copies this file and its sibling imports (the processor classes) and sets `self.auto_map`.
            written += [str(p) for p in custom_object_save(self, folder, config=self) or []]
        for modality, processor in self.processors.items():
            if modality in TOKENIZED:
                # Saved as is: tokenizer_config.json names no mmfm class, so AutoTokenizer needs no mmfm code.
                written += [str(p) for p in processor.save_pretrained(folder) or []]
            elif processor._auto_class is not None:
                # Sets the nested `auto_map` transformers' AutoImageProcessor/AutoFeatureExtractor read.
                custom_object_save(processor, folder, config=processor)
        path = folder / PROCESSOR_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return [*written, str(path)]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> MMFMProcessor:
        """Load the processors saved in a folder (or Hub repository): a composite's `processor_config.json`,
        a single processor at the top level, or an earlier mmfm's `mmfm_processor.json` with subfolders.

        Keywords: where the files are (`cache_dir`, `revision`, `subfolder`, `local_files_only`, `token`,
        ...) and `trust_remote_code` (for the tokenizer); transformers' private keywords are ignored.
        """
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        hub = {key: kwargs.pop(key) for key in HUB_KWARGS if key in kwargs}
        unknown = sorted(key for key in kwargs if not key.startswith("_"))
        if unknown:
            raise TypeError(
                f"MMFMProcessor.from_pretrained got unexpected keyword(s) {unknown}; it takes {list(HUB_KWARGS)} "
                "and `trust_remote_code`. Change a processor's settings after loading (e.g. "
                "`processor['vision'].size = ...`)."
            )
        source = str(pretrained_model_name_or_path)
        if (os.path.isabs(source) or source.startswith(".")) and not os.path.isdir(source):
            raise FileNotFoundError(f"No processor folder at {source}.")
        subfolder = hub.pop("subfolder", "") or ""
        saved = _read_json(source, PROCESSOR_NAME, subfolder, hub)
        if saved is not None and "modalities" in saved:
            return cls._from_processor_config(source, subfolder, saved, hub, trust_remote_code)
        index = _read_json(source, LEGACY_INDEX_NAME, subfolder, hub)
        if index is not None:
            locations = {m: entry["subfolder"] for m, entry in index["modalities"].items()}
        else:
            locations = _infer_locations(source, subfolder, hub)
        processors = {}
        for modality, location in locations.items():
            where = "/".join(part for part in (subfolder, location) if part)
            if modality in TOKENIZED:
                processors[modality] = AutoTokenizer.from_pretrained(
                    source, subfolder=where, trust_remote_code=trust_remote_code, **hub
                )
            else:
                processors[modality] = _processor_class(modality).from_pretrained(
                    source, subfolder=where, **hub
                )
        return cls(**processors)

    @classmethod
    def _from_processor_config(
        cls, source: str, subfolder: str, saved: dict, hub: dict, trust_remote_code: bool | None
    ) -> MMFMProcessor:
        unknown = sorted(set(saved["modalities"]) - set(SUB_PROCESSORS))
        if unknown:
            raise ValueError(
                f"{PROCESSOR_NAME} of {source} lists modalities {unknown} this MMFMProcessor does not know "
                f"(it knows {tuple(SUB_PROCESSORS)}): load it with the mmfm version that saved it."
            )
        processors = {}
        for modality in saved["modalities"]:
            if modality in TOKENIZED:
                processors[modality] = AutoTokenizer.from_pretrained(
                    source, subfolder=subfolder, trust_remote_code=trust_remote_code, **hub
                )
                continue
            attribute = SUB_PROCESSORS[modality][0]
            if attribute not in saved:
                raise ValueError(
                    f"{PROCESSOR_NAME} of {source} lists {modality} but has no `{attribute}` entry with its "
                    "settings: save the processor again with `MMFMProcessor.save_pretrained`."
                )
            processors[modality] = _processor_class(modality).from_dict(dict(saved[attribute]))
        return cls(**processors)

    @classmethod
    def from_model_config(
        cls, config: Any, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> MMFMProcessor:
        """Processors whose settings match a model configuration (an `MMFMConfig` or one encoder's config):
        image size and patch, mel bins and longest clip, node features, context length; text uses
        `tokenizer`. Needs mmfm (its modality registry builds each processor)."""
        try:
            # A plain import statement would make transformers require mmfm wherever this file is loaded.
            registry = importlib.import_module("mmfm.modalities")
        except ImportError as err:
            raise ImportError(
                "MMFMProcessor.from_model_config builds processors with mmfm's modality registry, and mmfm is "
                "not installed here: load a saved processor with `AutoProcessor.from_pretrained(folder, "
                "trust_remote_code=True)` instead."
            ) from err
        if getattr(config, "model_type", None) == "mmfm":  # the composite MMFMConfig
            configs = {m: config.modality_config(m) for m in config.modalities}
        else:
            configs = {registry.modality_of_config(config): config}
        return cls(
            **{m: registry.get_modality(m).build_processor(sub, tokenizer) for m, sub in configs.items()}
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={type(p).__name__}" for m, p in self.processors.items())
        return f"MMFMProcessor({parts})"


def _is_a(processor: Any, expected: type) -> bool:
    """`isinstance`, also across copies of one class: mmfm's own and the copy transformers loads from a saved
    folder (`trust_remote_code`) are different class objects built from the same code."""
    return isinstance(processor, expected) or any(
        klass.__name__ == expected.__name__
        and klass.__module__.split(".")[-1] == expected.__module__.split(".")[-1]
        for klass in type(processor).__mro__
    )


def _processor_class(modality: str) -> type:
    return SUB_PROCESSORS[modality][1]


def _tokenize(tokenizer: PreTrainedTokenizerBase, texts: Any, kwargs: dict) -> BatchFeature:
    """Tokenize with padding; reject empty texts and, unless truncation is asked for, overlong ones."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"`text` must be a string or a list of strings, got {describe(texts)}.")
    wrong = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if wrong:
        raise TypeError(
            f"`text` must be a string or a list of strings, but `text[{wrong[0]}]` is "
            f"{describe(texts[wrong[0]])}."
        )
    if not texts:
        raise ValueError("`text` is an empty list; pass at least one string.")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(f"`text` items {empty} are empty or whitespace only; empty text cannot be encoded.")
    kwargs = {"padding": True, **kwargs}
    encoded = tokenizer(list(texts), **kwargs)
    limit = kwargs.get("max_length") or tokenizer.model_max_length
    if not kwargs.get("truncation"):
        lengths = [int(sum(row)) for row in encoded["attention_mask"]]
        too_long = [i for i, n in enumerate(lengths) if n > limit]
        if too_long:
            raise ValueError(
                f"`text` items {too_long} tokenize to more than {limit} tokens (longest "
                f"{max(lengths)}); pass text_kwargs={{'truncation': True}} to cut them, or split the text."
            )
    return encoded


def _read_json(source: str, filename: str, subfolder: str, hub: dict) -> dict | None:
    """The JSON file `filename` of a folder or Hub repository, or None when it has none."""
    path = cached_file(
        source,
        filename,
        subfolder=subfolder,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub,
    )
    return None if path is None else json.loads(Path(path).read_text())


def _has_file(source: str, filename: str, subfolder: str, hub: dict) -> bool:
    return (
        cached_file(
            source,
            filename,
            subfolder=subfolder,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            **hub,
        )
        is not None
    )


def _infer_locations(source: str, subfolder: str, hub: dict) -> dict[str, str]:
    """Modalities of a folder saved without a composite config or an index (one processor at the top
    level), from its files: a tokenizer, and/or the processor class named in `preprocessor_config.json`."""
    locations = {}
    if any(_has_file(source, name, subfolder, hub) for name in TOKENIZER_FILES):
        locations.update(dict.fromkeys(TOKENIZED, ""))
    saved = _read_json(source, FEATURE_EXTRACTOR_NAME, subfolder, hub)
    if saved is not None:
        class_name = saved.get("image_processor_type") or saved.get("feature_extractor_type")
        by_name = {cls.__name__: m for m, (_, cls) in SUB_PROCESSORS.items() if m not in TOKENIZED}
        if class_name not in by_name:
            raise ValueError(
                f"{FEATURE_EXTRACTOR_NAME} of {source} describes a {class_name!r} processor; MMFMProcessor loads "
                f"{sorted(by_name)}."
            )
        locations[by_name[class_name]] = ""
    if not locations:
        raise FileNotFoundError(
            f"{source} holds no tokenizer, {FEATURE_EXTRACTOR_NAME}, {PROCESSOR_NAME} or {LEGACY_INDEX_NAME}: "
            "nothing for MMFMProcessor to load."
        )
    return locations


__all__ = ["SUB_PROCESSORS", "MMFMProcessor"]
