"""Contrastive losses between paired embeddings (CLIP and SigLIP), with the all-gather that lets every
process score its rows against the whole global batch.

Distributed form (open_clip's `--gather-with-grad --local-loss`): each process scores only its own B rows
against all B x W gathered columns (W processes), with the matching column of local row i at
`rank * B + i`. The all-gather carries gradients back to the process that produced each column
(`torch.distributed.nn`; `accelerate`'s `gather` carries none), so after the usual data-parallel
gradient average (DDP) the gradients equal those of one process holding the whole global batch.
Memory per process: O(B x B * W) logits instead of O(B * W x B * W).

Every process must hold the same number of rows B (checked: a ValueError names the sizes).

The logit scale is passed already exponentiated (the multiplier, not its log); clamping the learned log
scale to `LOGIT_SCALE_MAX` is the model's job.

Part of the exportable model folder: imports only torch.
"""

import math

import torch
import torch.distributed
from torch import nn

CLIP_LOGIT_SCALE_INIT = math.log(1 / 0.07)
"""CLIP's initial log logit scale (temperature 0.07; Radford et al., 2021)."""
LOGIT_SCALE_MAX = math.log(100)
"""The learned log logit scale is clamped at log 100 = 4.6052 (CLIP)."""
SIGLIP_LOGIT_SCALE_INIT = math.log(10)
"""SigLIP's initial log logit scale (Zhai et al., 2023)."""
SIGLIP_LOGIT_BIAS_INIT = -10.0
"""SigLIP's initial logit bias: starts the loss near the prior of mostly negative pairs."""


def _world() -> tuple[int, int]:
    """(world size, rank) of the default process group; (1, 0) when there is none."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather `x` over the processes of the default group, keeping gradients.

    Args:
        x: (B, ...) this process's rows. Every process must pass the same shape (a ValueError on every
            process names the shapes when they differ) with the same number of dimensions.

    Returns:
        (B * W, ...) the rows of all W processes in rank order, and this process's row offset in it
        (`rank * B`). Without an initialised process group of more than one process: `(x, 0)`.
        The backward pass sums each gathered row's gradient from every process and returns it to the
        process that produced the row (as `torch.distributed.nn.functional.all_gather` does).
    """
    world_size, rank = _world()
    if world_size == 1:
        return x, 0
    shape = torch.tensor(x.shape, dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(shape) for _ in range(world_size)]
    torch.distributed.all_gather(shapes, shape)
    if any(not torch.equal(other, shape) for other in shapes):
        raise ValueError(
            "gather_with_grad needs the same tensor shape on every process (equal local batch sizes); "
            f"got {[tuple(other.tolist()) for other in shapes]} on ranks 0..{world_size - 1}"
        )
    return _AllGatherWithGrad.apply(x), rank * x.shape[0]


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward returns to each process the summed gradient of its own rows (what
    `torch.distributed.nn.functional.all_gather` does, without importing `torch.distributed.nn`, which pulls
    in RPC and can abort gloo processes at exit). The backward all-reduces the full gradient and slices this
    process's rows: gloo has no reduce-scatter."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world_size, rank = _world()
        parts = [torch.empty_like(x) for _ in range(world_size)]
        torch.distributed.all_gather(parts, x.contiguous())
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        start, end = ctx.rows
        return grad[start:end]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"contrastive losses need paired (B, P) embeddings of one shape; got a {tuple(a.shape)} "
            f"and b {tuple(b.shape)}"
        )
    if a.shape[0] == 0:
        raise ValueError("contrastive losses need at least one row; got an empty batch")


def _scalar(value: torch.Tensor | float, name: str, like: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, device=like.device)
    if value.numel() != 1:
        raise ValueError(f"{name} must be a scalar tensor; got shape {tuple(value.shape)}")
    return value.reshape(()).to(like.dtype)


def _precise(x: torch.Tensor) -> torch.Tensor:
    """At least float32 for the logits (half-precision embeddings are upcast, float64 is kept)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _check_negatives(columns: int) -> None:
    if columns < 2:
        raise ValueError(
            "a global batch of 1 has no negatives: contrastive losses need at least 2 pairs over all "
            "processes (a larger batch, or gather=True under data parallelism)"
        )


def clip_loss(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float, gather: bool = True
) -> torch.Tensor:
    """Symmetric InfoNCE of CLIP (Radford et al., 2021): each a_i must pick b_i among all b, and each b_i
    must pick a_i among all a.

    Args:
        a, b: (B, P) L2-normalised embeddings; row i of `a` pairs with row i of `b`.
        logit_scale: () the multiplier of the cosine similarities (already exponentiated).
        gather: under a process group, score the local rows against the columns of every process
            (local-loss form, labels offset by rank); otherwise the negatives are the local rows only.

    Returns:
        () `(CE(s * a @ b_all.T, labels) + CE(s * b @ a_all.T, labels)) / 2` with
        `labels = arange(B) + rank * B`, each cross-entropy averaged over the B local rows. The mean of
        this over processes equals the full-matrix loss of the global batch (`clip_loss_full`).
    """
    _check_pair(a, b)
    a, b = _precise(a), _precise(b)
    scale = _scalar(logit_scale, "logit_scale", a)
    rows, width = a.shape
    if gather:
        both, offset = gather_with_grad(torch.cat([a, b], dim=1))  # one collective for both towers
        all_a, all_b = both[:, :width], both[:, width:]
    else:
        all_a, all_b, offset = a, b, 0
    _check_negatives(all_a.shape[0])
    labels = torch.arange(rows, device=a.device) + offset
    a_to_b = nn.functional.cross_entropy(scale * a @ all_b.T, labels)  # (B, B * W) logits
    b_to_a = nn.functional.cross_entropy(scale * b @ all_a.T, labels)
    return (a_to_b + b_to_a) / 2


def siglip_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | float,
    gather: bool = True,
) -> torch.Tensor:
    """Pairwise sigmoid loss of SigLIP (Zhai et al., 2023): every (a_i, b_j) is an independent binary
    decision, positive for i == j and negative otherwise.

    Args:
        a, b: (B, P) L2-normalised embeddings; row i of `a` pairs with row i of `b`.
        logit_scale: () the multiplier of the cosine similarities (already exponentiated).
        logit_bias: () added to every logit.
        gather: under a process group, score the local rows of `a` against the rows of `b` of every
            process (the positive of local row i is column `rank * B + i`); otherwise local rows only.

    Returns:
        () `-sum_i sum_j log sigmoid(z_ij * (s * a_i . b_j + bias)) / B` over the B local rows i and all
        gathered columns j, z_ij = +1 for the matching pair and -1 otherwise (the paper divides by |B|).
        The mean of this over processes equals the full-matrix loss of the global batch.
    """
    _check_pair(a, b)
    a, b = _precise(a), _precise(b)
    scale = _scalar(logit_scale, "logit_scale", a)
    bias = _scalar(logit_bias, "logit_bias", a)
    rows = a.shape[0]
    all_b, offset = gather_with_grad(b) if gather else (b, 0)
    _check_negatives(all_b.shape[0])
    logits = scale * a @ all_b.T + bias  # (B, B * W)
    signs = -torch.ones_like(logits)
    signs[torch.arange(rows, device=a.device), torch.arange(rows, device=a.device) + offset] = 1.0
    return -nn.functional.logsigmoid(signs * logits).sum() / rows


def clip_loss_full(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's loss on one process holding the whole batch: the full (N, N) logit matrix and its transpose.

    Args:
        a, b: (N, P) L2-normalised paired embeddings. logit_scale: () multiplier.

    Returns:
        () `(CE(L, arange(N)) + CE(L.T, arange(N))) / 2` with `L = s * a @ b.T`.
    """
    _check_pair(a, b)
    a, b = _precise(a), _precise(b)
    _check_negatives(a.shape[0])
    logits = _scalar(logit_scale, "logit_scale", a) * a @ b.T
    labels = torch.arange(a.shape[0], device=a.device)
    return (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels)) / 2


def siglip_loss_full(
    a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float, logit_bias: torch.Tensor | float
) -> torch.Tensor:
    """SigLIP's loss on one process holding the whole batch.

    Args:
        a, b: (N, P) L2-normalised paired embeddings. logit_scale, logit_bias: () scalars.

    Returns:
        () `-sum log sigmoid(Z * (s * a @ b.T + bias)) / N` with Z = 2 * I - 1 (N, N).
    """
    _check_pair(a, b)
    a, b = _precise(a), _precise(b)
    _check_negatives(a.shape[0])
    logits = _scalar(logit_scale, "logit_scale", a) * a @ b.T + _scalar(logit_bias, "logit_bias", a)
    signs = 2 * torch.eye(a.shape[0], dtype=logits.dtype, device=a.device) - 1
    return -nn.functional.logsigmoid(signs * logits).sum() / a.shape[0]


__all__ = [
    "CLIP_LOGIT_SCALE_INIT",
    "LOGIT_SCALE_MAX",
    "SIGLIP_LOGIT_BIAS_INIT",
    "SIGLIP_LOGIT_SCALE_INIT",
    "clip_loss",
    "clip_loss_full",
    "gather_with_grad",
    "siglip_loss",
    "siglip_loss_full",
]
