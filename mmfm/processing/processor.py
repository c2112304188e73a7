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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, BatchFeature, PreTrainedConfig, PreTrainedTokenizerBase

from ..models import CONFIG_CLASSES, MODALITIES, MMFMConfig
from .feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor
from .graph_processing_mmfm import MMFMGraphProcessor
from .image_processing_mmfm import MMFMImageProcessor
from .timeseries_processing_mmfm import MMFMTimeSeriesProcessor

PROCESSOR_INDEX_NAME = "mmfm_processor.json"
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
PROCESSOR_CLASSES = {
    "vision": MMFMImageProcessor,
    "audio": MMFMAudioFeatureExtractor,
    "graph": MMFMGraphProcessor,
    "timeseries": MMFMTimeSeriesProcessor,
}


class MMFMProcessor:
    """Per-modality processors behind one call that returns the nested batch `MMFMModel` takes.

    Args:
        text: a tokenizer (e.g. from `mmfm.processing.train_tokenizer`).
        vision, audio, graph, timeseries: the modality's processor.

    Example:
        batch = processor(text=["a red circle"], vision=[image])
        outputs = model(**batch)        # batch == {"text": {...}, "vision": {...}}
    """

    def __init__(
        self,
        text: PreTrainedTokenizerBase | None = None,
        vision: MMFMImageProcessor | None = None,
        audio: MMFMAudioFeatureExtractor | None = None,
        graph: MMFMGraphProcessor | None = None,
        timeseries: MMFMTimeSeriesProcessor | None = None,
    ):
        self.processors: dict[str, Any] = {}
        for modality, processor in zip(MODALITIES, (text, vision, audio, graph, timeseries)):
            if processor is None:
                continue
            expected = PreTrainedTokenizerBase if modality == "text" else PROCESSOR_CLASSES[modality]
            if not isinstance(processor, expected):
                raise TypeError(
                    f"`{modality}` must be a {expected.__name__}, got {type(processor).__name__}."
                )
            self.processors[modality] = processor
        if not self.processors:
            raise ValueError(f"MMFMProcessor needs a processor for at least one modality of {MODALITIES}.")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.processors)

    def __getitem__(self, modality: str) -> Any:
        return self._processor_for(modality)

    def _processor_for(self, modality: str) -> Any:
        if modality not in MODALITIES:
            raise ValueError(f"Unknown modality {modality!r}; modalities are {MODALITIES}.")
        if modality not in self.processors:
            raise ValueError(f"This MMFMProcessor has no {modality} processor; it has {self.modalities}.")
        return self.processors[modality]

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        vision: Any = None,
        audio: Any = None,
        graph: Any = None,
        timeseries: Any = None,
        return_tensors: str | None = "pt",
        text_kwargs: dict | None = None,
        vision_kwargs: dict | None = None,
        audio_kwargs: dict | None = None,
        graph_kwargs: dict | None = None,
        timeseries_kwargs: dict | None = None,
        **unknown: Any,
    ) -> dict[str, BatchFeature]:
        """Process each given modality; returns `{modality: BatchFeature}` for `MMFMModel(**batch)`.

        `<modality>_kwargs` go to that processor (e.g. `audio_kwargs={"sampling_rate": 16000}`,
        `text_kwargs={"truncation": True, "max_length": 128}`).
        """
        if unknown:
            raise ValueError(
                f"Unknown modality or argument(s) {sorted(unknown)}; modalities are {MODALITIES}."
            )
        inputs = dict(zip(MODALITIES, (text, vision, audio, graph, timeseries)))
        options = dict(
            zip(MODALITIES, (text_kwargs, vision_kwargs, audio_kwargs, graph_kwargs, timeseries_kwargs))
        )
        batch = {}
        for modality, data in inputs.items():
            if data is None:
                continue
            processor = self._processor_for(modality)
            kwargs = {"return_tensors": return_tensors, **(options[modality] or {})}
            if modality == "text":
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
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError("`text` must be a string or a list of strings.")
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
        others = [m for m in self.processors if m != "text"]
        locations: dict[str, str] = {}
        written: list[str] = []
        for modality, processor in self.processors.items():
            location = "" if modality == "text" or len(others) == 1 else modality
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
        image size and patch, mel bins and longest clip, node features, context length."""
        if isinstance(config, MMFMConfig):
            configs = {m: config.modality_config(m) for m in config.modalities}
        else:
            by_type = {c.model_type: m for m, c in CONFIG_CLASSES.items()}
            if config.model_type not in by_type:
                raise ValueError(f"No mmfm processor for model type {config.model_type!r}.")
            configs = {by_type[config.model_type]: config}
        processors: dict[str, Any] = {}
        for modality, sub in configs.items():
            if modality == "text":
                if tokenizer is None:
                    raise ValueError(
                        "The configuration includes text: pass `tokenizer` (e.g. load_demo_tokenizer())."
                    )
                if len(tokenizer) > sub.vocab_size:
                    raise ValueError(
                        f"The tokenizer has {len(tokenizer)} tokens but the text config's vocab_size is {sub.vocab_size}."
                    )
                processors["text"] = tokenizer
            elif modality == "vision":
                size = {"height": sub.image_size, "width": sub.image_size}
                processors["vision"] = MMFMImageProcessor(
                    size=size,
                    patch_size=sub.patch_size,
                    num_channels=sub.num_channels,
                    do_convert_rgb=sub.num_channels == 3,
                )
            elif modality == "audio":
                processors["audio"] = MMFMAudioFeatureExtractor(
                    num_mel_bins=sub.num_mel_bins, max_length=sub.max_frames
                )
            elif modality == "graph":
                processors["graph"] = MMFMGraphProcessor(node_feature_size=sub.node_feature_size)
            else:
                processors["timeseries"] = MMFMTimeSeriesProcessor(
                    context_length=sub.context_length, num_input_channels=sub.num_input_channels
                )
        return cls(**processors)

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
            if modality == "text":
                processors[modality] = AutoTokenizer.from_pretrained(path, **kwargs)
            else:
                processors[modality] = PROCESSOR_CLASSES[modality].from_pretrained(path, **kwargs)
        return cls(**processors)

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={type(p).__name__}" for m, p in self.processors.items())
        return f"MMFMProcessor({parts})"


def _infer_locations(folder: Path) -> dict[str, str]:
    """Modalities of a folder saved without an index, from its top-level files."""
    locations = {}
    if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
        locations["text"] = ""
    config_path = folder / PREPROCESSOR_CONFIG_NAME
    if config_path.exists():
        saved = json.loads(config_path.read_text())
        class_name = saved.get("image_processor_type") or saved.get("feature_extractor_type")
        by_name = {c.__name__: m for m, c in PROCESSOR_CLASSES.items()}
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


__all__ = ["MMFMProcessor", "PROCESSOR_CLASSES"]
