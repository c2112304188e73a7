"""Next-patch prediction (GPHT-style, Liu et al., 2024): with causal attention, each patch predicts the next."""

from ..models import MMFMTimeSeriesForNextPatchPrediction
from .registry import Objective
from .ts_masked import UCR_SETS

OBJECTIVE = Objective(
    name="ts_autoregressive",
    model_class=MMFMTimeSeriesForNextPatchPrediction,
    description="next-patch prediction (GPHT-style): causal patches, each predicts the next",
    processor_kwargs={"truncation": True},
    evaluation=({"subset": "ucr", "include": UCR_SETS},),
)
