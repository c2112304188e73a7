"""Self-supervised objectives: the registry (one module per objective, `mmfm/objectives/<name>.py`), and the
loss maths (plain functions) and seeded masking they use.

The loss functions live in the exportable model folder (`mmfm.models.mmfm_losses`, ...) because the
pretraining models compute their losses in `forward` and must load without mmfm; this package is their
public home for everything else.
"""

from ..models.mmfm_contrastive import (
    clip_loss,
    clip_loss_full,
    gather_with_grad,
    siglip_loss,
    siglip_loss_full,
)
from ..models.mmfm_losses import (
    binary_token_loss,
    info_nce,
    masked_cross_entropy,
    masked_mean,
    masked_mse,
    normalize_patch_targets,
    scaled_cosine_error,
    soft_cross_entropy,
)
from ..models.mmfm_masking import (
    check_mask_ratio,
    masking_noise,
    random_masking,
    random_masking_over_batch,
    random_masking_with_padding,
)
from ..models.mmfm_text_losses import causal_lm_loss, token_substitution_loss
from .registry import Objective, get_objective, objectives, objectives_of

__all__ = [
    "Objective",
    "binary_token_loss",
    "causal_lm_loss",
    "check_mask_ratio",
    "clip_loss",
    "clip_loss_full",
    "gather_with_grad",
    "get_objective",
    "info_nce",
    "masked_cross_entropy",
    "masked_mean",
    "masked_mse",
    "masking_noise",
    "normalize_patch_targets",
    "objectives",
    "objectives_of",
    "random_masking",
    "random_masking_over_batch",
    "random_masking_with_padding",
    "scaled_cosine_error",
    "siglip_loss",
    "siglip_loss_full",
    "soft_cross_entropy",
    "token_substitution_loss",
]
