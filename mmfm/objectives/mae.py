"""MAE (He et al., 2022): reconstruct the pixels of 75% removed patches from the visible ones."""

from ..models import MMFMVisionForMAE
from .registry import Objective

OBJECTIVE = Objective(
    name="mae",
    model_class=MMFMVisionForMAE,
    description="masked autoencoder (MAE): reconstruct normalised pixels of 75% removed patches",
    # Both MAE and DropPos use fixed 2-D sine-cosine positions (MAE's table layout).
    encoder_defaults={"position_embedding_type": "sincos"},
    evaluation=({"subset": "digits"},),
)
