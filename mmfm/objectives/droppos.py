"""DropPos (Wang et al., 2023): classify the position of visible patches whose position was dropped."""

from ..models import MMFMVisionForDropPos
from ..models.modeling_mmfm_vision_droppos import DropPosConfig
from .registry import Objective


def sigma_decay(objective_config: DropPosConfig, progress: float) -> dict[str, float]:
    """Position-smoothing sigma from its configured maximum down to 0 over the run, linearly (the authors'
    `--sigma_decay`: `(1 - epoch / epochs) * sigma`, here per step)."""
    return {"position_smoothing_sigma": objective_config.position_smoothing_sigma * max(0.0, 1.0 - progress)}


OBJECTIVE = Objective(
    name="droppos",
    model_class=MMFMVisionForDropPos,
    description="DropPos: classify the true position of patches whose position embedding was dropped",
    encoder_defaults={"position_embedding_type": "sincos"},
    evaluation=({"subset": "digits"},),
    schedule=sigma_decay,
)
