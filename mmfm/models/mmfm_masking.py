"""Seeded random masking for the masked objectives, reproducible from a generator or a noise tensor.

Part of the exportable model folder: imports only torch.
"""

import torch


def check_mask_ratio(mask_ratio: float, field: str = "mask_ratio") -> None:
    """`ValueError` unless 0 < mask_ratio < 1."""
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, (int, float)) or not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"`{field}` must be strictly between 0 and 1, got {mask_ratio!r}.")


def masking_noise(shape: tuple[int, ...], device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform noise whose ranks decide what is masked; on the CPU so a seed means the same on any device."""
    return torch.rand(shape, generator=generator).to(device)


def random_masking(
    batch_size: int,
    length: int,
    mask_ratio: float,
    device=None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking of `length` items, keeping int(length * (1 - mask_ratio)) (MAE's and
    DropPos's `len_keep`; 49 of 196 patches at 0.75).

    Returns:
        keep_indices (B, L_keep): kept item indices, in increasing order of noise (MAE's order);
        mask (B, L) bool: True where an item is removed;
        restore_indices (B, L): argsort that puts [kept, removed] back in the original order.
    """
    check_mask_ratio(mask_ratio)
    keep = int(length * (1.0 - mask_ratio))
    if keep < 1 or keep >= length:
        raise ValueError(
            f"Cannot mask {mask_ratio:.0%} of {length} items and keep at least one of each: the input is too "
            "short to mask anything; use longer inputs, smaller patches or another mask_ratio."
        )
    if noise is None:
        noise = masking_noise((batch_size, length), device, generator)
    elif tuple(noise.shape) != (batch_size, length):
        raise ValueError(f"`noise` must have shape ({batch_size}, {length}), got {tuple(noise.shape)}.")
    shuffle = torch.argsort(noise, dim=1)
    restore = torch.argsort(shuffle, dim=1)
    keep_indices = shuffle[:, :keep]
    mask = torch.ones(batch_size, length, dtype=torch.bool, device=noise.device)
    mask[:, :keep] = False
    mask = torch.gather(mask, 1, restore)
    return keep_indices, mask, restore


def random_masking_with_padding(
    valid: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask round(n_i * mask_ratio) of the n_i valid items of each sample (at least 1, at most n_i - 1);
    padding is never masked.

    Args:
        valid: (B, L) bool, True for real items.

    Returns:
        (B, L) bool mask, True where an item is masked.
    """
    check_mask_ratio(mask_ratio)
    counts = valid.sum(dim=1)
    if bool((counts < 2).any()):
        short = (counts < 2).nonzero().flatten().tolist()
        raise ValueError(
            f"Samples {short} have fewer than 2 real items: too short to mask anything while keeping one."
        )
    if noise is None:
        noise = masking_noise(tuple(valid.shape), valid.device, generator)
    elif noise.shape != valid.shape:
        raise ValueError(f"`noise` must have shape {tuple(valid.shape)}, got {tuple(noise.shape)}.")
    noise = noise.masked_fill(~valid, float("inf"))
    rank = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    num_masked = (counts.float() * mask_ratio).round().long().clamp(min=1)
    num_masked = torch.minimum(num_masked, counts - 1)
    return (rank < num_masked[:, None]) & valid


def random_masking_over_batch(
    valid: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mask int(n * mask_ratio) of the n valid items of the whole batch (at least 1, at most n - 1), chosen
    jointly rather than per sample, as GraphMAE masks the nodes of a batched graph: a sample may get
    none or all of its items masked. Padding is never masked.

    Args:
        valid: (B, L) bool, True for real items.

    Returns:
        (B, L) bool mask, True where an item is masked.
    """
    check_mask_ratio(mask_ratio)
    total = int(valid.sum())
    if total < 2:
        raise ValueError(f"The batch has {total} real item(s): too short to mask anything while keeping one.")
    if noise is None:
        noise = masking_noise(tuple(valid.shape), valid.device, generator)
    elif noise.shape != valid.shape:
        raise ValueError(f"`noise` must have shape {tuple(valid.shape)}, got {tuple(noise.shape)}.")
    flat = noise.masked_fill(~valid, float("inf")).flatten()
    num_masked = min(max(int(total * mask_ratio), 1), total - 1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.argsort(flat)[:num_masked]] = True
    return mask.view(valid.shape)


__all__ = [
    "check_mask_ratio",
    "masking_noise",
    "random_masking",
    "random_masking_over_batch",
    "random_masking_with_padding",
]
