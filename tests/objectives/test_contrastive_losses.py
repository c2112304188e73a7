"""CLIP and SigLIP losses: equal to slow per-pair formulas (values and gradients); under 2 gloo processes
the local-loss form with the gradient-carrying all-gather gives, after the data-parallel gradient
average, the loss and gradients of one process with the whole batch, and local-only negatives do not.
"""

import math
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from mmfm.models.mmfm_contrastive import (
    CLIP_LOGIT_SCALE_INIT,
    LOGIT_SCALE_MAX,
    SIGLIP_LOGIT_BIAS_INIT,
    SIGLIP_LOGIT_SCALE_INIT,
    clip_loss,
    clip_loss_full,
    gather_with_grad,
    siglip_loss,
    siglip_loss_full,
)

from ._contrastive_worker import LOCAL, WORLD, Towers, batch, loss_and_grads, worker

TOLERANCE = 1e-6


def unit_rows(rows: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return nn.functional.normalize(torch.randn(rows, width, generator=generator, dtype=torch.float64), dim=-1)


def slow_clip(a, b, scale):
    """Mean over rows of -log softmax of the matching pair, both directions, one pair at a time."""
    n = a.shape[0]
    total = 0.0
    for first, second in ((a, b), (b, a)):
        for i in range(n):
            logits = [scale * (first[i] * second[j]).sum() for j in range(n)]
            total = total - (logits[i] - torch.log(sum(torch.exp(logit) for logit in logits)))
    return total / (2 * n)


def slow_siglip(a, b, scale, bias):
    """-sum over all pairs of log sigmoid(+-logit), divided by the number of rows."""
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            sign = 1.0 if i == j else -1.0
            logit = scale * (a[i] * b[j]).sum() + bias
            total = total - torch.log(1 / (1 + torch.exp(-sign * logit)))
    return total / n


def leaves():
    a, b = unit_rows(5, 4, seed=0), unit_rows(5, 4, seed=1)
    scale = torch.tensor(math.exp(CLIP_LOGIT_SCALE_INIT), dtype=torch.float64)
    bias = torch.tensor(-1.5, dtype=torch.float64)
    return [t.requires_grad_() for t in (a, b, scale, bias)]


def value_and_grads(loss, inputs):
    return loss.detach(), torch.autograd.grad(loss, inputs)


def assert_close(first, second, tolerance=TOLERANCE):
    (value1, grads1), (value2, grads2) = first, second
    assert abs(value1 - value2) < tolerance
    for grad1, grad2 in zip(grads1, grads2, strict=True):
        assert (grad1 - grad2).abs().max() < tolerance


def test_constants():
    assert math.exp(CLIP_LOGIT_SCALE_INIT) == pytest.approx(1 / 0.07)
    assert LOGIT_SCALE_MAX == pytest.approx(4.6052, abs=1e-4)
    assert math.exp(SIGLIP_LOGIT_SCALE_INIT) == pytest.approx(10.0)
    assert SIGLIP_LOGIT_BIAS_INIT == -10.0


def test_clip_loss_matches_slow_formula():
    a, b, scale, _ = leaves()
    reference = value_and_grads(slow_clip(a, b, scale), (a, b, scale))
    assert_close(value_and_grads(clip_loss(a, b, scale), (a, b, scale)), reference)
    assert_close(value_and_grads(clip_loss(a, b, scale, gather=False), (a, b, scale)), reference)
    assert_close(value_and_grads(clip_loss_full(a, b, scale), (a, b, scale)), reference)


def test_siglip_loss_matches_slow_formula():
    a, b, scale, bias = leaves()
    reference = value_and_grads(slow_siglip(a, b, scale, bias), (a, b, scale, bias))
    assert_close(value_and_grads(siglip_loss(a, b, scale, bias), (a, b, scale, bias)), reference)
    assert_close(
        value_and_grads(siglip_loss(a, b, scale, bias, gather=False), (a, b, scale, bias)), reference
    )
    assert_close(value_and_grads(siglip_loss_full(a, b, scale, bias), (a, b, scale, bias)), reference)


def test_half_precision_embeddings_score_in_float32():
    a, b = unit_rows(5, 4, seed=0), unit_rows(5, 4, seed=1)
    loss = clip_loss(a.bfloat16(), b.bfloat16(), torch.tensor(10.0))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(clip_loss_full(a, b, 10.0).item(), abs=0.05)


def test_gather_without_process_group_is_identity():
    x = unit_rows(3, 4, seed=0)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0


def test_clear_errors():
    a, b = unit_rows(4, 3, seed=0), unit_rows(5, 3, seed=1)
    for loss in (lambda: clip_loss(a, b, 10.0), lambda: siglip_loss(a, b, 10.0, -10.0)):
        with pytest.raises(ValueError, match=r"a \(4, 3\) and b \(5, 3\)"):
            loss()
    with pytest.raises(ValueError, match=r"a \(4, 3\) and b \(4,\)"):
        clip_loss(a, a[:, 0], 10.0)
    one = unit_rows(1, 3, seed=0)
    for loss in (clip_loss, clip_loss_full):
        with pytest.raises(ValueError, match="a global batch of 1 has no negatives"):
            loss(one, one, 10.0)
    for loss in (siglip_loss, siglip_loss_full):
        with pytest.raises(ValueError, match="a global batch of 1 has no negatives"):
            loss(one, one, 10.0, -10.0)
    with pytest.raises(ValueError, match=r"logit_scale must be a scalar tensor; got shape \(2,\)"):
        clip_loss(a, a, torch.ones(2))
    with pytest.raises(ValueError, match=r"logit_bias must be a scalar tensor; got shape \(1, 2\)"):
        siglip_loss(a, a, 10.0, torch.ones(1, 2))
    with pytest.raises(ValueError, match="empty batch"):
        clip_loss(a[:0], a[:0], 10.0)


# -- Two gloo processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("contrastive")
    context = mp.start_processes(worker, args=(free_port(), str(folder)), nprocs=WORLD, join=False,
                                 start_method="spawn")  # fmt: skip
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the 2-process contrastive run did not finish in 120 s")
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD)]


@pytest.mark.xdist_group("multiprocess")
def test_distributed_gather_with_grad(two_processes):
    weights = torch.arange(WORLD * LOCAL * 3, dtype=torch.float64).reshape(WORLD * LOCAL, 3)
    expected_rows = torch.arange(WORLD, dtype=torch.float64).repeat_interleave(LOCAL)[:, None].expand(-1, 3)
    for rank, results in enumerate(two_processes):
        assert results["modules"] == []  # the module loads, and gathers, with torch alone
        gathered, offset, grad = results["gather"]
        assert torch.equal(gathered, expected_rows)
        assert offset == rank * LOCAL
        # Process r's loss weighs the gathered rows by (r + 1): the rows' gradient is the sum, 1 + 2 = 3.
        assert torch.equal(grad, 3 * weights[rank * LOCAL : (rank + 1) * LOCAL])
        assert "same tensor shape on every process" in results["unequal"]
        assert "[(4, 3), (5, 3)]" in results["unequal"]


@pytest.mark.xdist_group("multiprocess")
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_distributed_loss_matches_single_process(two_processes, kind):
    model, (x_a, x_b) = Towers(), batch()
    full_loss, full_grads = loss_and_grads(model, x_a, x_b, kind, "full")
    # One process: the local-loss function without a group equals the full-matrix form.
    single_loss, single_grads = loss_and_grads(model, x_a, x_b, kind, "gather")
    assert abs(single_loss - full_loss) < TOLERANCE
    for name, grad in full_grads.items():
        assert (single_grads[name] - grad).abs().max() < TOLERANCE, name
    expected_names = {"tower_a.weight", "tower_a.bias", "tower_b.weight", "tower_b.bias", "log_scale"}
    assert set(full_grads) == expected_names | ({"bias"} if kind == "siglip" else set())

    for results in two_processes:
        loss, grads = results[kind, "gather"]
        assert abs(loss - full_loss) < TOLERANCE
        assert set(grads) == set(full_grads)
        for name, grad in full_grads.items():
            assert (grads[name] - grad).abs().max() < TOLERANCE, name
        # Local negatives only: a different (easier) task, with different gradients.
        local_loss, local_grads = results[kind, "local"]
        assert local_loss < full_loss - 1e-3
        assert max((local_grads[name] - grad).abs().max() for name, grad in full_grads.items()) > 1e-3
