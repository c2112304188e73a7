"""Registration of mmfm's configurations, models and processors with transformers' Auto classes.

The one place where mmfm tells transformers about its classes; `import mmfm` runs it once.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
)

from .models import (
    CONFIG_CLASSES,
    ENCODER_CLASSES,
    PRETRAINING_CLASSES,
    MMFMConfig,
    MMFMModel,
    MMFMTextConfig,
    MMFMTextForCausalLM,
    MMFMTextForMaskedLM,
)
from .processing import (
    MMFMAudioFeatureExtractor,
    MMFMGraphProcessor,
    MMFMImageProcessor,
    MMFMTimeSeriesProcessor,
)

_registered = False


def register_auto_classes() -> None:
    """Register every mmfm model type with `AutoConfig`, `AutoModel` and `AutoModelForPreTraining` (text
    also with `AutoModelForMaskedLM`/`AutoModelForCausalLM`), the image processor with
    `AutoImageProcessor` and the other processors with `AutoFeatureExtractor` (idempotent)."""
    global _registered
    if _registered:
        return
    for modality, config_class in CONFIG_CLASSES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, ENCODER_CLASSES[modality], exist_ok=True)
    AutoConfig.register(MMFMConfig.model_type, MMFMConfig, exist_ok=True)
    AutoModel.register(MMFMConfig, MMFMModel, exist_ok=True)

    # Each modality's encoder with its pretraining heads; text also by language-modeling head.
    for config_class, pretraining_class in zip(CONFIG_CLASSES.values(), PRETRAINING_CLASSES.values()):
        AutoModelForPreTraining.register(config_class, pretraining_class, exist_ok=True)
    AutoModelForMaskedLM.register(MMFMTextConfig, MMFMTextForMaskedLM, exist_ok=True)
    AutoModelForCausalLM.register(MMFMTextConfig, MMFMTextForCausalLM, exist_ok=True)

    # One implementation (pure torch) serves both backends transformers 5 may ask for.
    AutoImageProcessor.register(
        CONFIG_CLASSES["vision"],
        image_processor_classes={"pil": MMFMImageProcessor, "torchvision": MMFMImageProcessor},
        exist_ok=True,
    )
    AutoFeatureExtractor.register(CONFIG_CLASSES["audio"], MMFMAudioFeatureExtractor, exist_ok=True)
    AutoFeatureExtractor.register(CONFIG_CLASSES["graph"], MMFMGraphProcessor, exist_ok=True)
    AutoFeatureExtractor.register(CONFIG_CLASSES["timeseries"], MMFMTimeSeriesProcessor, exist_ok=True)
    _registered = True


__all__ = ["register_auto_classes"]
