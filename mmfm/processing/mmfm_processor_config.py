"""Read one mmfm feature extractor's own settings from a folder, also from a composite's processor_config.json.

A composite `MMFMProcessor` saves every non-text processor in one `processor_config.json`, each under its
attribute name (`audio_processor`, `graph_feature_extractor`, `timeseries_feature_extractor`).
transformers' `FeatureExtractionMixin.from_pretrained` reads only the `feature_extractor` / `audio_processor`
entry there, so `MMFMGraphProcessor.from_pretrained(composite_folder)` would be built from the audio
extractor's settings. This mixin reads the class's own entry and refuses settings saved for another class.

Part of the saved processor code: imports only transformers and the standard library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers.utils import PROCESSOR_NAME, cached_file

_LOCATION_KWARGS = (
    "cache_dir",
    "force_download",
    "proxies",
    "token",
    "local_files_only",
    "revision",
    "subfolder",
)


class OwnSettingsMixin:
    """For `FeatureExtractionMixin` subclasses: `processor_config_key` names the class's entry in a
    composite's `processor_config.json` (the attribute `MMFMProcessor` gives it)."""

    processor_config_key: str = ""

    @classmethod
    def get_feature_extractor_dict(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        location = {key: kwargs[key] for key in _LOCATION_KWARGS if kwargs.get(key) is not None}
        own = _own_entry(str(pretrained_model_name_or_path), cls.processor_config_key, location)
        try:
            settings, kwargs = super().get_feature_extractor_dict(pretrained_model_name_or_path, **kwargs)
        except OSError:
            if own is None:
                raise
            return own, {
                k: v for k, v in kwargs.items() if k not in _LOCATION_KWARGS and not k.startswith("_")
            }
        if own is not None:
            return own, kwargs
        saved_as = settings.get("feature_extractor_type")
        if saved_as is not None and saved_as != cls.__name__:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds the settings of a {saved_as}, not of a {cls.__name__}. "
                f"Load that class, or load the folder's processors with `AutoProcessor.from_pretrained(folder, "
                "trust_remote_code=True)` and take the one you need (`processor['graph']`)."
            )
        return settings, kwargs


def _own_entry(source: str, key: str, location: dict[str, Any]) -> dict[str, Any] | None:
    """`processor_config.json[key]` of a folder or Hub repository, or None."""
    if not key or os.path.isfile(source):  # a path to one JSON file holds no processor_config.json
        return None
    path = cached_file(
        source,
        PROCESSOR_NAME,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **location,
    )
    if path is None or Path(path).is_dir():
        return None
    entry = json.loads(Path(path).read_text()).get(key)
    return dict(entry) if isinstance(entry, dict) else None


__all__ = ["OwnSettingsMixin"]
