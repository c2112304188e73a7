"""Loss maths of the self-supervised objectives, as plain functions.

They live in the exportable model folder because the `*ForPreTraining` models compute their losses in
`forward` and must load without mmfm; `mmfm.objectives` re-exports them. Each is tested against a slow,
obviously correct version in `tests/objectives/`.

Part of the exportable model folder: imports only torch.
"""

import torch
from torch import nn


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the positions where `mask` (same shape, bool or 0/1) is set; 0 if none."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1.0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked items (MAE, He et al., 2022: the loss on removed patches only).

    Args:
        prediction, target: (B, L, P) per-item vectors (e.g. P pixels of a patch).
        mask: (B, L) items to score (the error is averaged over P first, then over items), or
            (B, L, P) to score individual elements (e.g. observed values only).
    """
    squared = (prediction - target) ** 2
    if mask.dim() == squared.dim() - 1:
        return masked_mean(squared.mean(dim=-1), mask)
    return masked_mean(squared, mask)


def masked_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy over (N, V) `logits` for (N,) `labels`, skipping `ignore_index` (0 if all skipped).

    The mean over the scored items, or their sum divided by `num_items_in_batch` when given (the scored
    items of every micro-batch of an accumulated step, as transformers' `Trainer` passes it, so a step's
    gradient does not depend on how its tokens fall into micro-batches).
    """
    keep = labels != ignore_index
    if not bool(keep.any()):
        return logits.sum() * 0.0
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(logits[keep].float(), labels[keep])
    total = nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_c targets[c] * log_softmax(logits)[c] for (N, C) logits and target
    distributions (rows summing to 1)."""
    return -(targets.float() * logits.float().log_softmax(dim=-1)).sum(dim=-1).mean()


def normalize_patch_targets(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch normalised targets of MAE's `norm_pix_loss`: (B, L, P) minus each patch's mean,
    divided by its standard deviation (unbiased, as in the reference code)."""
    mean = patches.mean(dim=-1, keepdim=True)
    variance = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (variance + eps) ** 0.5


def info_nce(predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0):
    """SSAST's discriminative loss (Gong et al., 2022): within each sample, each masked item's
    prediction must pick its own target among the targets of all masked items of that sample.

    Args:
        predictions, targets: (B, M, P) vectors per candidate item.
        mask: (B, M) bool, the masked items of each sample (others are neither queries nor candidates).
        temperature: divides the dot-product scores.

    Returns:
        Mean cross-entropy over masked items, and the accuracy of picking the right target.
    """
    scores = torch.einsum("bip,bjp->bij", predictions.float(), targets.float()) / temperature
    scores = scores.masked_fill(~mask[:, None, :], torch.finfo(scores.dtype).min)
    log_probabilities = scores.log_softmax(dim=-1)
    diagonal = torch.diagonal(log_probabilities, dim1=-2, dim2=-1)  # (B, M): log p(own target)
    loss = -masked_mean(diagonal, mask)
    correct = (scores.argmax(dim=-1) == torch.arange(mask.shape[1], device=mask.device)).float()
    return loss, masked_mean(correct, mask)


def scaled_cosine_error(prediction: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """GraphMAE's scaled cosine error (Hou et al., 2022): mean over (N, F) rows of (1 - cos)^gamma."""
    cosine = nn.functional.cosine_similarity(prediction.float(), target.float(), dim=-1, eps=1e-8)
    return (1.0 - cosine).pow(gamma).mean()


def binary_token_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of (B, L) logits against 0/1 `labels` over the real tokens in `mask`."""
    losses = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    return masked_mean(losses, mask)


__all__ = [
    "binary_token_loss",
    "info_nce",
    "masked_cross_entropy",
    "masked_mean",
    "masked_mse",
    "normalize_patch_targets",
    "scaled_cosine_error",
    "soft_cross_entropy",
]
