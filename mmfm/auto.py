"""Registration of mmfm's configurations, models and processors with transformers' Auto classes.

The one place where mmfm tells transformers about its classes; `import mmfm` runs it once.
"""

from transformers import AutoConfig, AutoModel

from .models import CONFIG_CLASSES, ENCODER_CLASSES, MMFMConfig, MMFMModel

_registered = False


def register_auto_classes() -> None:
    """Register every mmfm model type with `AutoConfig` and `AutoModel` (idempotent)."""
    global _registered
    if _registered:
        return
    for modality, config_class in CONFIG_CLASSES.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, ENCODER_CLASSES[modality], exist_ok=True)
    AutoConfig.register(MMFMConfig.model_type, MMFMConfig, exist_ok=True)
    AutoModel.register(MMFMConfig, MMFMModel, exist_ok=True)
    _registered = True


__all__ = ["register_auto_classes"]
