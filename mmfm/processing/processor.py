"""`MMFMProcessor`: one object that prepares inputs for any subset of modalities, saved with the model.

Layout of a saved folder:
- the tokenizer at the top level (`tokenizer.json`, `tokenizer_config.json`), so `AutoTokenizer` loads it;
- a single non-text processor at the top level too (`preprocessor_config.json`), so `AutoImageProcessor`
  or `AutoFeatureExtractor` loads it from the model folder; with several, each goes to a subfolder
  named by its modality (`vision/`, `audio/`, ...), as they would all claim `preprocessor_config.json`;
- `mmfm_processor.json`, the index of which modality lives where.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, BatchFeature, PreTrainedConfig, PreTrainedTokenizerBase

from ..modalities import get_modality, modality_of_config, modality_specs
from ..models import MMFMConfig
from .validation import describe

PROCESSOR_INDEX_NAME = "mmfm_processor.json"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"


class MMFMProcessor:
    """Per-modality processors behind one call that returns the nested batch `MMFMModel` takes.

    Args:
        <modality>: the modality's processor, one keyword per modality (`text`: a tokenizer, e.g. from
            `mmfm.processing.train_tokenizer`; `vision`: an `MMFMImageProcessor`; ...).

    Example:
        batch = processor(text=["a red circle"], vision=[image])
        outputs = model(**batch)        # batch == {"text": {...}, "vision": {...}}
    """

    def __init__(self, **processors: Any):
        self.processors: dict[str, Any] = {}
        specs = modality_specs()
        unknown = sorted(set(processors) - set(specs))
        if unknown:
            raise ValueError(f"Unknown modality name(s) {unknown}; modalities are {tuple(specs)}.")
        for modality, spec in specs.items():
            processor = processors.get(modality)
            if processor is None:
                continue
            if not isinstance(processor, spec.processor_class):
                raise TypeError(
                    f"`{modality}` must be a {spec.processor_class.__name__}, got {type(processor).__name__}."
                )
            self.processors[modality] = processor
        if not self.processors:
            raise ValueError(f"MMFMProcessor needs a processor for at least one modality of {tuple(specs)}.")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.processors)

    def __getitem__(self, modality: str) -> Any:
        return self._processor_for(modality)

    def _processor_for(self, modality: str) -> Any:
        get_modality(modality)
        if modality not in self.processors:
            raise ValueError(f"This MMFMProcessor has no {modality} processor; it has {self.modalities}.")
        return self.processors[modality]

    def __call__(self, return_tensors: str | None = "pt", **inputs: Any) -> dict[str, BatchFeature]:
        """Process each given modality; returns `{modality: BatchFeature}` for `MMFMModel(**batch)`.

        Keywords: `<modality>=items` for each modality to process, and `<modality>_kwargs={...}` for that
        processor's options (e.g. `audio_kwargs={"sampling_rate": 16000}`,
        `text_kwargs={"truncation": True, "max_length": 128}`).
        """
        specs = modality_specs()
        names = set(specs) | {f"{m}_kwargs" for m in specs}
        unknown = sorted(set(inputs) - names)
        if unknown:
            raise ValueError(
                f"Unknown modality or argument(s) {unknown}; modalities are {tuple(specs)} (options go in "
                "`<modality>_kwargs`)."
            )
        batch = {}
        for modality, spec in specs.items():
            data = inputs.get(modality)
            if data is None:
                continue
            processor = self._processor_for(modality)
            options = inputs.get(f"{modality}_kwargs") or {}
            if not isinstance(options, dict):
                raise TypeError(
                    f"`{modality}_kwargs` must be a dict of {type(processor).__name__} options (e.g. "
                    f"{{'return_attention_mask': True}}), got {describe(options)}."
                )
            kwargs = {"return_tensors": return_tensors, **options}
            if spec.tokenized:
                batch[modality] = self._tokenize(processor, data, kwargs)
            else:
                batch[modality] = processor(data, **kwargs)
        if not batch:
            raise ValueError(
                f"Pass inputs for at least one of this processor's modalities {self.modalities}."
            )
        return batch

    @staticmethod
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
            raise ValueError(
                f"`text` items {empty} are empty or whitespace only; empty text cannot be encoded."
            )
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

    def save_pretrained(self, save_directory: str | os.PathLike) -> list[str]:
        """Save every processor (layout in the module docstring) and the index; returns written paths."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        tokenized = {m for m, spec in modality_specs().items() if spec.tokenized}
        others = [m for m in self.processors if m not in tokenized]
        locations: dict[str, str] = {}
        written: list[str] = []
        for modality, processor in self.processors.items():
            location = "" if modality in tokenized or len(others) == 1 else modality
            result = processor.save_pretrained(folder / location if location else folder)
            written.extend(str(p) for p in (result or []))
            locations[modality] = location
        index = {
            "modalities": {
                m: {"class": type(p).__name__, "subfolder": locations[m]} for m, p in self.processors.items()
            }
        }
        index_path = folder / PROCESSOR_INDEX_NAME
        index_path.write_text(json.dumps(index, indent=2) + "\n")
        written.append(str(index_path))
        return written

    @classmethod
    def from_model_config(
        cls, config: PreTrainedConfig, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> MMFMProcessor:
        """Processors whose settings match a model configuration (an `MMFMConfig` or one encoder's config):
        image size and patch, mel bins and longest clip, node features, context length; text uses
        `tokenizer`."""
        if isinstance(config, MMFMConfig):
            configs = {m: config.modality_config(m) for m in config.modalities}
        else:
            configs = {modality_of_config(config): config}
        return cls(**{m: get_modality(m).build_processor(sub, tokenizer) for m, sub in configs.items()})

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs: Any) -> MMFMProcessor:
        """Load the processors saved in `folder` (an index from `save_pretrained`, or a plain folder holding
        a tokenizer and/or one `preprocessor_config.json`)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"No processor folder at {folder}.")
        index_path = folder / PROCESSOR_INDEX_NAME
        if index_path.exists():
            entries = json.loads(index_path.read_text())["modalities"]
            locations = {m: entry["subfolder"] for m, entry in entries.items()}
        else:
            locations = _infer_locations(folder)
        processors = {}
        for modality, location in locations.items():
            path = folder / location if location else folder
            spec = get_modality(modality)
            loader = AutoTokenizer if spec.tokenized else spec.processor_class
            processors[modality] = loader.from_pretrained(path, **kwargs)
        return cls(**processors)

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={type(p).__name__}" for m, p in self.processors.items())
        return f"MMFMProcessor({parts})"


def _infer_locations(folder: Path) -> dict[str, str]:
    """Modalities of a folder saved without an index, from its top-level files."""
    locations = {}
    if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
        locations.update({m: "" for m, spec in modality_specs().items() if spec.tokenized})
    config_path = folder / PREPROCESSOR_CONFIG_NAME
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        class_name = saved.get("image_processor_type") or saved.get("feature_extractor_type")
        by_name = {
            spec.processor_class.__name__: m for m, spec in modality_specs().items() if not spec.tokenized
        }
        if class_name not in by_name:
            raise ValueError(
                f"{config_path} describes a {class_name!r} processor; MMFMProcessor loads {sorted(by_name)}."
            )
        locations[by_name[class_name]] = ""
    if not locations:
        raise FileNotFoundError(
            f"{folder} holds no tokenizer, {PREPROCESSOR_CONFIG_NAME} or {PROCESSOR_INDEX_NAME}."
        )
    return locations


__all__ = ["MMFMProcessor"]
