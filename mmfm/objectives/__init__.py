"""Self-supervised objectives: the loss maths (plain functions) and seeded masking.

The functions live in the exportable model folder (`mmfm.models.mmfm_losses`, `mmfm.models.mmfm_masking`)
because the `*ForPreTraining` models compute their losses in `forward` and must load without mmfm;
this package is their public home for everything else.
"""

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
from ..models.mmfm_text_losses import causal_lm_loss, token_substitution_loss
from ..models.mmfm_masking import check_mask_ratio, masking_noise, random_masking, random_masking_with_padding

__all__ = [
    "binary_token_loss",
    "causal_lm_loss",
    "token_substitution_loss",
    "check_mask_ratio",
    "info_nce",
    "masked_cross_entropy",
    "masked_mean",
    "masked_mse",
    "masking_noise",
    "normalize_patch_targets",
    "random_masking",
    "random_masking_with_padding",
    "scaled_cosine_error",
    "soft_cross_entropy",
]
