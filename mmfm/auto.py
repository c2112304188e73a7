"""Registration of mmfm's configurations, models and processors with transformers' Auto classes.

The one place where mmfm tells transformers about its classes; `import mmfm` runs it once. Everything is
read from the registries: each modality's encoder and processor (`mmfm.modalities`), each objective's
model and the Auto classes it declares (`mmfm.objectives`).
"""

import transformers
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoProcessor,
)
from transformers.image_processing_utils import BaseImageProcessor

# The class itself: `transformers.AutoVideoProcessor` is a placeholder that raises without torchvision.
from transformers.models.auto.video_processing_auto import AutoVideoProcessor

from .modalities import modality_specs
from .models import HEAD_CLASSES, MMFMConfig, MMFMModel
from .objectives import objectives_of
from .processing import MMFMProcessor

_registered = False


def register_auto_classes() -> None:
    """Register every mmfm model type (idempotent):

    - `AutoConfig` and `AutoModel` for each encoder and the composite;
    - each objective's model with the Auto classes it declares (`auto_classes`: `AutoModelForPreTraining`
      for all, plus `AutoModelForMaskedLM` / `AutoModelForCausalLM` for the text LMs). A modality with
      several objectives registers the tuple of their models, and transformers picks the one named in the
      saved `config.architectures`, so `AutoModelForPreTraining` loads every export (a bare encoder gets the
      modality's default objective, the tuple's first);
    - each downstream head (`mmfm.models.HEAD_CLASSES`) with the Auto classes it declares, the same way;
    - the image processor with `AutoImageProcessor`, the other processors with `AutoFeatureExtractor`, and
      `MMFMProcessor` with `AutoProcessor` for the composite.
    """
    global _registered
    if _registered:
        return
    for modality, spec in modality_specs().items():
        AutoConfig.register(spec.config_class.model_type, spec.config_class, exist_ok=True)
        AutoModel.register(spec.config_class, spec.encoder_class, exist_ok=True)
        by_auto_class: dict[str, list] = {}
        for objective in objectives_of(modality):
            for auto_class in objective.model_class.auto_classes:
                by_auto_class.setdefault(auto_class, []).append(objective.model_class)
        # Downstream heads, with the Auto classes each names (sequence, token, image and audio classification,
        # time-series prediction); time-series classification and regression share one, picked likewise.
        for head in HEAD_CLASSES[modality]:
            for auto_class in head.auto_classes:
                by_auto_class.setdefault(auto_class, []).append(head)
        for auto_class, models in by_auto_class.items():
            getattr(transformers, auto_class).register(
                spec.config_class, models[0] if len(models) == 1 else tuple(models), exist_ok=True
            )
        if spec.tokenized:
            continue
        if issubclass(spec.processor_class, BaseImageProcessor):
            # One implementation (pure torch) serves both backends transformers 5 may ask for.
            AutoImageProcessor.register(
                spec.config_class,
                image_processor_classes={"pil": spec.processor_class, "torchvision": spec.processor_class},
                exist_ok=True,
            )
            _register_no_video_processor(spec.config_class)
        else:
            AutoFeatureExtractor.register(spec.config_class, spec.processor_class, exist_ok=True)
            # AutoProcessor on such an export otherwise tries AutoImageProcessor first, which derives a remote
            # "...ImageProcessor" entry from the saved auto_map and asks on stdin whether to run it.
            AutoProcessor.register(spec.config_class, spec.processor_class, exist_ok=True)
    AutoConfig.register(MMFMConfig.model_type, MMFMConfig, exist_ok=True)
    AutoModel.register(MMFMConfig, MMFMModel, exist_ok=True)
    # The composite answers `logits_per_image`, as the zero-shot image classification pipeline asks.
    transformers.AutoModelForZeroShotImageClassification.register(MMFMConfig, MMFMModel, exist_ok=True)
    # A composite export's `processor_config.json` names MMFMProcessor: AutoProcessor then uses mmfm's class
    # (without mmfm, the copy saved in the folder). Encoders get none: AutoProcessor gives their one processor.
    AutoProcessor.register(MMFMConfig, MMFMProcessor, exist_ok=True)
    _register_no_video_processor(MMFMConfig)
    _registered = True


def _register_no_video_processor(config_class) -> None:
    """Say that models of `config_class` have no video processor.

    Pipelines probe for a video processor next to an image processor; for a folder whose image processor is
    remote code, transformers derives a remote `...VideoProcessor` entry from its `auto_map` and, with mmfm
    installed and `trust_remote_code` unset, asks on stdin whether to run it (then fails to find it). An entry
    without a class answers "local, none" instead, and the pipeline carries on without one.
    """
    AutoVideoProcessor.register(config_class, video_processor_class=None, exist_ok=True)


__all__ = ["register_auto_classes"]
