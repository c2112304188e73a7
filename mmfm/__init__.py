"""mmfm: self-supervised pretraining of multimodal foundation models on the Hugging Face stack.

Importing mmfm registers every mmfm model type with transformers' Auto classes (in `mmfm.auto`), so
`AutoConfig`, `AutoModel`, `AutoModelForPreTraining` and the processor Auto classes load mmfm folders
without `trust_remote_code`, and registers mmfm's model types with peft (`mmfm.peft_defaults`), so adapters
need no `target_modules` and `AutoPeftModel*` reloads them.
"""

from .auto import register_auto_classes
from .models import (
    CONFIG_CLASSES,
    ENCODER_CLASSES,
    MODALITIES,
    MMFMAudioConfig,
    MMFMAudioModel,
    MMFMConfig,
    MMFMGraphConfig,
    MMFMGraphModel,
    MMFMModel,
    MMFMTextConfig,
    MMFMTextModel,
    MMFMTimeSeriesConfig,
    MMFMTimeSeriesModel,
    MMFMVisionConfig,
    MMFMVisionModel,
)
from .peft_defaults import register_peft_defaults

__version__ = "0.1.0.dev0"

register_auto_classes()
register_peft_defaults()

__all__ = [
    "CONFIG_CLASSES",
    "ENCODER_CLASSES",
    "MODALITIES",
    "MMFMAudioConfig",
    "MMFMAudioModel",
    "MMFMConfig",
    "MMFMGraphConfig",
    "MMFMGraphModel",
    "MMFMModel",
    "MMFMTextConfig",
    "MMFMTextModel",
    "MMFMTimeSeriesConfig",
    "MMFMTimeSeriesModel",
    "MMFMVisionConfig",
    "MMFMVisionModel",
    "register_auto_classes",
    "register_peft_defaults",
]
