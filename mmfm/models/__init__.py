"""The exportable model folder: configurations and models of every encoder and the composite.

Files here import only torch, transformers and each other (`from .x import y`), so a saved model folder
loads with `trust_remote_code=True` where mmfm is not installed. This `__init__` is not copied.
"""

from .configuration_mmfm import CONFIG_CLASSES, MODALITIES, MMFMConfig
from .configuration_mmfm_audio import MMFMAudioConfig
from .configuration_mmfm_common import ENCODER_PRESETS, MMFMEncoderConfig
from .configuration_mmfm_graph import MMFMGraphConfig
from .configuration_mmfm_text import MMFMTextConfig
from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .configuration_mmfm_vision import MMFMVisionConfig
from .modeling_mmfm import ENCODER_CLASSES, MMFMModel, MMFMModelOutput, MMFMPreTrainedModel
from .modeling_mmfm_audio import MMFMAudioForPreTraining, MMFMAudioModel, MMFMAudioModelOutput
from .modeling_mmfm_graph import MMFMGINConv, MMFMGraphForPreTraining, MMFMGraphModel, MMFMGraphModelOutput
from .modeling_mmfm_text import (
    MMFMTextCausalLMOutput,
    MMFMTextForCausalLM,
    MMFMTextForMaskedLM,
    MMFMTextForPreTraining,
    MMFMTextForPreTrainingOutput,
    MMFMTextMaskedLMOutput,
    MMFMTextModel,
    MMFMTextModelOutput,
)
from .modeling_mmfm_timeseries import (
    MMFMTimeSeriesForPreTraining,
    MMFMTimeSeriesModel,
    MMFMTimeSeriesModelOutput,
)
from .modeling_mmfm_vision import MMFMVisionForPreTraining, MMFMVisionModel, MMFMVisionModelOutput

# The model `AutoModelForPreTraining` gives for each modality (encoder + its pretraining heads).
PRETRAINING_CLASSES = {
    "text": MMFMTextForPreTraining,
    "vision": MMFMVisionForPreTraining,
    "audio": MMFMAudioForPreTraining,
    "graph": MMFMGraphForPreTraining,
    "timeseries": MMFMTimeSeriesForPreTraining,
}

__all__ = [
    "PRETRAINING_CLASSES",
    "MMFMAudioForPreTraining",
    "MMFMGraphForPreTraining",
    "MMFMTimeSeriesForPreTraining",
    "MMFMVisionForPreTraining",
    "CONFIG_CLASSES",
    "ENCODER_CLASSES",
    "ENCODER_PRESETS",
    "MODALITIES",
    "MMFMAudioConfig",
    "MMFMAudioModel",
    "MMFMAudioModelOutput",
    "MMFMConfig",
    "MMFMEncoderConfig",
    "MMFMGINConv",
    "MMFMGraphConfig",
    "MMFMGraphModel",
    "MMFMGraphModelOutput",
    "MMFMModel",
    "MMFMModelOutput",
    "MMFMPreTrainedModel",
    "MMFMTextCausalLMOutput",
    "MMFMTextConfig",
    "MMFMTextForCausalLM",
    "MMFMTextForMaskedLM",
    "MMFMTextForPreTraining",
    "MMFMTextForPreTrainingOutput",
    "MMFMTextMaskedLMOutput",
    "MMFMTextModel",
    "MMFMTextModelOutput",
    "MMFMTimeSeriesConfig",
    "MMFMTimeSeriesModel",
    "MMFMTimeSeriesModelOutput",
    "MMFMVisionConfig",
    "MMFMVisionModel",
    "MMFMVisionModelOutput",
]
