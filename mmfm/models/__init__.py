"""The exportable model folder: configurations and models of every encoder, every objective's pretraining
model and the composite.

Files here import only torch, transformers and each other (`from .x import y`), so a saved model folder
loads with `trust_remote_code=True` where mmfm is not installed. This `__init__` is not copied.

Layout: `configuration_mmfm_<modality>.py` + `modeling_mmfm_<modality>.py` per encoder,
`modeling_mmfm_<modality>_<objective>.py` per objective (its model, heads and `MMFMObjectiveConfig`),
`mmfm_modalities.py` (the composite's list of encoders), shared blocks in `mmfm_layers.py`, losses and
masking in `mmfm_losses.py`, `mmfm_text_losses.py` and `mmfm_masking.py`.
"""

from .configuration_mmfm import MMFMConfig
from .configuration_mmfm_audio import MMFMAudioConfig
from .configuration_mmfm_common import ENCODER_PRESETS, MMFMEncoderConfig, MMFMObjectiveConfig
from .configuration_mmfm_graph import MMFMGraphConfig
from .configuration_mmfm_text import MMFMTextConfig
from .configuration_mmfm_timeseries import MMFMTimeSeriesConfig
from .configuration_mmfm_vision import MMFMVisionConfig
from .mmfm_heads import MMFMHeadMixin
from .mmfm_modalities import CONFIG_CLASSES, ENCODER_CLASSES, HEAD_CLASSES, MODALITIES
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm import MMFMModel, MMFMModelOutput, MMFMPreTrainedModel
from .modeling_mmfm_audio import MMFMAudioForAudioClassification, MMFMAudioModel, MMFMAudioModelOutput
from .modeling_mmfm_audio_ssast import MMFMAudioForSSAST, SSASTConfig
from .modeling_mmfm_graph import (
    MMFMGINConv,
    MMFMGraphForGraphClassification,
    MMFMGraphModel,
    MMFMGraphModelOutput,
)
from .modeling_mmfm_graph_graphmae import GraphMAEConfig, MMFMGraphForGraphMAE
from .modeling_mmfm_text import (
    MMFMTextForSequenceClassification,
    MMFMTextForTokenClassification,
    MMFMTextModel,
    MMFMTextModelOutput,
)
from .modeling_mmfm_text_clm import CausalLMConfig, MMFMTextCausalLMOutput, MMFMTextForCausalLM
from .modeling_mmfm_text_mlm import MaskedLMConfig, MMFMTextForMaskedLM, MMFMTextMaskedLMOutput
from .modeling_mmfm_text_rts import (
    MMFMTextForPreTraining,
    MMFMTextForPreTrainingOutput,
    TokenSubstitutionConfig,
)
from .modeling_mmfm_timeseries import (
    MMFMTimeSeriesForClassification,
    MMFMTimeSeriesForPrediction,
    MMFMTimeSeriesForPredictionOutput,
    MMFMTimeSeriesForRegression,
    MMFMTimeSeriesModel,
    MMFMTimeSeriesModelOutput,
)
from .modeling_mmfm_timeseries_autoregressive import MMFMTimeSeriesForNextPatchPrediction, NextPatchConfig
from .modeling_mmfm_timeseries_masked import MaskedPatchConfig, MMFMTimeSeriesForMaskedPatchModeling
from .modeling_mmfm_vision import MMFMVisionForImageClassification, MMFMVisionModel, MMFMVisionModelOutput
from .modeling_mmfm_vision_droppos import DropPosConfig, MMFMVisionForDropPos
from .modeling_mmfm_vision_mae import MAEConfig, MMFMVisionForMAE

__all__ = [
    "CONFIG_CLASSES",
    "ENCODER_CLASSES",
    "ENCODER_PRESETS",
    "HEAD_CLASSES",
    "MODALITIES",
    "CausalLMConfig",
    "DropPosConfig",
    "GraphMAEConfig",
    "MAEConfig",
    "MMFMAudioConfig",
    "MMFMAudioForAudioClassification",
    "MMFMAudioForSSAST",
    "MMFMAudioModel",
    "MMFMAudioModelOutput",
    "MMFMConfig",
    "MMFMEncoderConfig",
    "MMFMGINConv",
    "MMFMGraphConfig",
    "MMFMGraphForGraphClassification",
    "MMFMGraphForGraphMAE",
    "MMFMGraphModel",
    "MMFMGraphModelOutput",
    "MMFMHeadMixin",
    "MMFMModel",
    "MMFMModelOutput",
    "MMFMObjectiveConfig",
    "MMFMPreTrainedModel",
    "MMFMPreTrainingMixin",
    "MMFMTextCausalLMOutput",
    "MMFMTextConfig",
    "MMFMTextForCausalLM",
    "MMFMTextForMaskedLM",
    "MMFMTextForPreTraining",
    "MMFMTextForPreTrainingOutput",
    "MMFMTextForSequenceClassification",
    "MMFMTextForTokenClassification",
    "MMFMTextMaskedLMOutput",
    "MMFMTextModel",
    "MMFMTextModelOutput",
    "MMFMTimeSeriesConfig",
    "MMFMTimeSeriesForClassification",
    "MMFMTimeSeriesForMaskedPatchModeling",
    "MMFMTimeSeriesForNextPatchPrediction",
    "MMFMTimeSeriesForPrediction",
    "MMFMTimeSeriesForPredictionOutput",
    "MMFMTimeSeriesForRegression",
    "MMFMTimeSeriesModel",
    "MMFMTimeSeriesModelOutput",
    "MMFMVisionConfig",
    "MMFMVisionForDropPos",
    "MMFMVisionForImageClassification",
    "MMFMVisionForMAE",
    "MMFMVisionModel",
    "MMFMVisionModelOutput",
    "MaskedLMConfig",
    "MaskedPatchConfig",
    "NextPatchConfig",
    "SSASTConfig",
    "TokenSubstitutionConfig",
]
