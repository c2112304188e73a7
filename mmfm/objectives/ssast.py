"""SSAST (Gong et al., 2022): masked spectrogram patches, discriminated (InfoNCE) and reconstructed (MSE)."""

from ..models import MMFMAudioForSSAST
from .registry import Objective

OBJECTIVE = Objective(
    name="ssast",
    model_class=MMFMAudioForSSAST,
    description="SSAST: masked log-mel patches, picked among the clip's masked patches and reconstructed",
    processor_kwargs={"truncation": True},
    evaluation=({"subset": "spoken_digits"},),
)
