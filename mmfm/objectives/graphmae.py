"""GraphMAE (Hou et al., 2022): masked node features reconstructed with a scaled cosine error."""

from ..models import MMFMGraphForGraphMAE
from .registry import Objective

OBJECTIVE = Objective(
    name="graphmae",
    model_class=MMFMGraphForGraphMAE,
    description="GraphMAE: reconstruct masked node features (re-masked codes, GIN decoder, scaled cosine error)",
    evaluation=(
        {"subset": "molecules"},
        {"subset": "molecules", "label_column": "tpsa", "probes": ["ridge"]},
    ),
)
