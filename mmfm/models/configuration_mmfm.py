"""Configuration of the composite multimodal model (model type `mmfm`)."""

import math
from typing import Any, ClassVar

from transformers import PreTrainedConfig

from .configuration_mmfm_common import ExportableConfigMixin
from .mmfm_modalities import CONFIG_CLASSES, MODALITIES

# Each contrastive loss with its initial log similarity multiplier (CLIP: 1/0.07; SigLIP: 10).
LOSS_TYPES = {"clip": math.log(1 / 0.07), "siglip": math.log(10.0)}


class MMFMConfig(ExportableConfigMixin, PreTrainedConfig):
    r"""Configuration of [`MMFMModel`]: any subset of the encoders, each with its sub-config (like
    `CLIPConfig`), projected into one shared embedding space.

    Args:
        <modality>_config (`text_config`, `vision_config`, `audio_config`, `graph_config`,
            `timeseries_config`; one per modality of `mmfm_modalities.py`): the encoder configurations
            (config objects or dicts); leave a modality out (None) to omit its encoder.
        projection_dim: P, size of the shared embedding space.
        loss_type: the contrastive loss of `forward(..., return_loss=True)`: `clip` (symmetric cross entropy
            over the similarity matrix, Radford et al. 2021) or `siglip` (pairwise sigmoid loss with a
            learnable bias, Zhai et al. 2023).
        logit_scale_init_value: initial log of the similarity multiplier; None: the loss type's own (CLIP:
            ln(1/0.07) = 2.6592, SigLIP: ln(10) = 2.3026).
        logit_scale_max: the log-multiplier is clamped to this (CLIP: ln(100)) when computing logits.
        logit_bias_init_value: SigLIP's initial logit bias (-10); unused by CLIP (no bias parameter).
        gather_negatives: in a multi-process run, score each process's rows against the embeddings of every
            process (gathered with gradients), as open_clip's `--gather-with-grad --local-loss`; False keeps
            the negatives of the local batch only.
    """

    model_type = "mmfm"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm.MMFMConfig",
        "AutoModel": "modeling_mmfm.MMFMModel",
        "AutoModelForZeroShotImageClassification": "modeling_mmfm.MMFMModel",
    }
    # Plain `sub_configs` (not transformers >= 5.2x's `sub_configs_defaults`) so transformers 5.17 works too;
    # a missing modality stays None instead of getting a default encoder. The sub-configs are attributes
    # set from keyword arguments (one per registered modality), not dataclass fields, so the modality list
    # is written once, in `mmfm_modalities.py`.
    sub_configs = {f"{modality}_config": config_class for modality, config_class in CONFIG_CLASSES.items()}

    projection_dim: int = 512
    loss_type: str = "clip"
    logit_scale_init_value: float | None = None
    logit_scale_max: float = 4.6052
    logit_bias_init_value: float = -10.0
    gather_negatives: bool = True

    def __post_init__(self, **kwargs: Any):
        # Sub-configs arrive as config objects, dicts (from config.json) or None; build the objects before
        # the base class propagates the attention implementation to them.
        for key, config_class in self.sub_configs.items():
            value = kwargs.pop(key, None)
            if isinstance(value, dict):
                value = config_class(**{k: v for k, v in value.items() if k != "model_type"})
            elif value is not None and not isinstance(value, config_class):
                raise TypeError(
                    f"MMFMConfig.{key} must be a {config_class.__name__}, a dict or None, got {type(value).__name__}."
                )
            setattr(self, key, value)
        super().__post_init__(**kwargs)
        if (
            isinstance(self.projection_dim, bool)
            or not isinstance(self.projection_dim, int)
            or self.projection_dim <= 0
        ):
            raise ValueError(
                f"MMFMConfig.projection_dim must be a positive integer, got {self.projection_dim!r}."
            )
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(
                f"MMFMConfig.loss_type must be one of {list(LOSS_TYPES)}, got {self.loss_type!r}."
            )
        if self.logit_scale_init_value is None:
            self.logit_scale_init_value = LOSS_TYPES[self.loss_type]
        for name in ("logit_scale_init_value", "logit_scale_max", "logit_bias_init_value"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"MMFMConfig.{name} must be a finite number, got {value!r}.")

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities whose encoder this configuration includes, in canonical order."""
        return tuple(m for m in MODALITIES if getattr(self, f"{m}_config", None) is not None)

    def modality_config(self, modality: str) -> PreTrainedConfig:
        """The sub-config of `modality`; `ValueError` naming the available ones otherwise."""
        if modality not in MODALITIES:
            raise ValueError(f"Unknown modality {modality!r}; modalities are {MODALITIES}.")
        config = getattr(self, f"{modality}_config", None)
        if config is None:
            raise ValueError(f"This MMFMConfig has no {modality}_config; it includes {self.modalities}.")
        return config


__all__ = ["CONFIG_CLASSES", "LOSS_TYPES", "MODALITIES", "MMFMConfig"]
