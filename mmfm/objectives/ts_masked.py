"""Masked patch modeling (PatchTST, Nie et al., 2023): reconstruct 40% masked patches of each channel."""

from ..models import MMFMTimeSeriesForMaskedPatchModeling
from .registry import Objective

UCR_SETS = {"dataset": ["GunPoint", "ItalyPowerDemand", "ArrowHead", "OSULeaf"]}

OBJECTIVE = Objective(
    name="ts_masked",
    model_class=MMFMTimeSeriesForMaskedPatchModeling,
    description="masked patch modeling (PatchTST): reconstruct 40% of each channel's patches",
    processor_kwargs={"truncation": True},
    evaluation=({"subset": "ucr", "include": UCR_SETS},),
)
