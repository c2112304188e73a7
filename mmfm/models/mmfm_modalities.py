"""The modalities of the composite `MMFMModel`: one line per encoder, in canonical order.

This is the one place the exportable folder lists its modalities (the rest of mmfm reads the modality specs
of `mmfm.modalities`, which follow this order). A new modality adds its encoder here; its configuration
class comes with it (`config_class`), and its token is the configuration's `modality`.

Part of the exportable model folder: imports only its siblings.
"""

from .modeling_mmfm_audio import MMFMAudioForAudioClassification, MMFMAudioModel
from .modeling_mmfm_graph import MMFMGraphForGraphClassification, MMFMGraphModel
from .modeling_mmfm_text import (
    MMFMTextForSequenceClassification,
    MMFMTextForTokenClassification,
    MMFMTextModel,
)
from .modeling_mmfm_timeseries import (
    MMFMTimeSeriesForClassification,
    MMFMTimeSeriesForPrediction,
    MMFMTimeSeriesForRegression,
    MMFMTimeSeriesModel,
)
from .modeling_mmfm_vision import MMFMVisionForImageClassification, MMFMVisionModel

ENCODER_CLASSES = {
    encoder.config_class.modality: encoder
    for encoder in (MMFMTextModel, MMFMVisionModel, MMFMAudioModel, MMFMGraphModel, MMFMTimeSeriesModel)
}
CONFIG_CLASSES = {modality: encoder.config_class for modality, encoder in ENCODER_CLASSES.items()}
# The one modality vocabulary: folder names, batch keys, sub-config keys (`<modality>_config`) and
# model-type suffixes (`mmfm_<modality>`) all use these names, in this order.
MODALITIES = tuple(ENCODER_CLASSES)
# The downstream heads of each modality (fine-tuning), each loaded by the Auto classes it names
# (`auto_classes`); a modality's first head for an Auto class is what that class builds from a bare encoder.
HEAD_CLASSES = {
    "text": (MMFMTextForSequenceClassification, MMFMTextForTokenClassification),
    "vision": (MMFMVisionForImageClassification,),
    "audio": (MMFMAudioForAudioClassification,),
    "graph": (MMFMGraphForGraphClassification,),
    "timeseries": (MMFMTimeSeriesForClassification, MMFMTimeSeriesForRegression, MMFMTimeSeriesForPrediction),
}

__all__ = ["CONFIG_CLASSES", "ENCODER_CLASSES", "HEAD_CLASSES", "MODALITIES"]
