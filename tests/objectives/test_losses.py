"""Each loss function against a slow, obviously correct version, and the masking utilities."""

import math

import pytest
import torch

from mmfm.objectives import (
    binary_token_loss,
    info_nce,
    masked_cross_entropy,
    masked_mse,
    normalize_patch_targets,
    random_masking,
    random_masking_over_batch,
    random_masking_with_padding,
    scaled_cosine_error,
    soft_cross_entropy,
)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_masked_mse_per_item_and_per_element(gen):
    prediction, target = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    errors = [
        ((prediction[b, i] - target[b, i]) ** 2).mean() for b in range(2) for i in range(5) if mask[b, i]
    ]
    assert masked_mse(prediction, target, mask).item() == pytest.approx(
        sum(errors).item() / len(errors), rel=1e-6
    )
    elements = torch.rand(2, 5, 3, generator=gen) > 0.5
    chosen = [
        (prediction[idx] - target[idx]) ** 2 for idx in elements.nonzero().tolist() for idx in [tuple(idx)]
    ]
    expected = sum(chosen) / len(chosen)
    assert masked_mse(prediction, target, elements).item() == pytest.approx(expected.item(), rel=1e-6)


def test_masked_cross_entropy_skips_ignored_labels(gen):
    logits = torch.randn(6, 4, generator=gen)
    labels = torch.tensor([0, -100, 3, 2, -100, 1])
    terms = [-torch.log_softmax(logits[i], -1)[labels[i]] for i in range(6) if labels[i] != -100]
    assert masked_cross_entropy(logits, labels).item() == pytest.approx(
        (sum(terms) / len(terms)).item(), rel=1e-6
    )
    assert masked_cross_entropy(logits, torch.full((6,), -100)).item() == 0.0


def test_masked_cross_entropy_with_num_items_in_batch_divides_the_sum(gen):
    logits = torch.randn(6, 4, generator=gen)
    labels = torch.tensor([0, -100, 3, 2, -100, 1])
    terms = [-torch.log_softmax(logits[i], -1)[labels[i]] for i in range(6) if labels[i] != -100]
    for items in (10, torch.tensor(10)):  # Trainer passes a tensor
        got = masked_cross_entropy(logits, labels, num_items_in_batch=items).item()
        assert got == pytest.approx((sum(terms) / 10).item(), rel=1e-6)
    empty = masked_cross_entropy(logits, torch.full((6,), -100), num_items_in_batch=10)
    assert empty.item() == 0.0


def test_normalized_patch_targets_match_mae_reference(gen):
    patches = torch.rand(2, 4, 12, generator=gen)
    got = normalize_patch_targets(patches)
    for b in range(2):
        for i in range(4):
            p = patches[b, i]
            expected = (p - p.mean()) / math.sqrt(p.var(unbiased=True).item() + 1e-6)
            torch.testing.assert_close(got[b, i], expected)


def test_info_nce_matches_a_loop_over_samples(gen):
    predictions, targets = torch.randn(2, 5, 3, generator=gen), torch.randn(2, 5, 3, generator=gen)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    terms, hits = [], []
    for b in range(2):
        idx = mask[b].nonzero().flatten().tolist()
        for i in idx:
            scores = torch.stack([predictions[b, i] @ targets[b, j] for j in idx])
            terms.append(-torch.log_softmax(scores, 0)[idx.index(i)])
            hits.append(float(scores.argmax().item() == idx.index(i)))
    loss, accuracy = info_nce(predictions, targets, mask)
    assert loss.item() == pytest.approx((sum(terms) / len(terms)).item(), rel=1e-5)
    assert accuracy.item() == pytest.approx(sum(hits) / len(hits))


def test_scaled_cosine_error_matches_formula(gen):
    prediction, target = torch.randn(7, 4, generator=gen), torch.randn(7, 4, generator=gen)
    for gamma in (1.0, 2.0, 3.0):
        terms = [
            (1 - (prediction[i] @ target[i]) / (prediction[i].norm() * target[i].norm())) ** gamma
            for i in range(7)
        ]
        assert scaled_cosine_error(prediction, target, gamma).item() == pytest.approx(
            (sum(terms) / 7).item(), rel=1e-5
        )


def test_binary_token_loss_and_soft_cross_entropy(gen):
    logits, labels = torch.randn(2, 4, generator=gen), torch.randint(0, 2, (2, 4), generator=gen)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    terms = []
    for b, i in mask.nonzero().tolist():
        p = torch.sigmoid(logits[b, i])
        terms.append(-(labels[b, i] * torch.log(p) + (1 - labels[b, i]) * torch.log(1 - p)))
    assert binary_token_loss(logits, labels, mask).item() == pytest.approx(
        (sum(terms) / len(terms)).item(), rel=1e-5
    )
    scores = torch.randn(3, 5, generator=gen)
    targets = torch.softmax(torch.randn(3, 5, generator=gen), -1)
    expected = sum(-(targets[i] * torch.log_softmax(scores[i], -1)).sum() for i in range(3)) / 3
    assert soft_cross_entropy(scores, targets).item() == pytest.approx(expected.item(), rel=1e-6)


def test_random_masking_is_reproducible_and_consistent():
    keep, mask, restore = random_masking(3, 16, 0.75, generator=torch.Generator().manual_seed(1))
    keep2, mask2, _ = random_masking(3, 16, 0.75, generator=torch.Generator().manual_seed(1))
    assert torch.equal(keep, keep2) and torch.equal(mask, mask2)
    assert keep.shape == (3, 4) and mask.sum(dim=1).tolist() == [12, 12, 12]
    for b in range(3):
        assert not mask[b, keep[b]].any()  # kept items are exactly the unmasked ones
    noise = torch.rand(3, 16)
    keep3, _, restore3 = random_masking(3, 16, 0.75, noise=noise)
    assert torch.equal(keep3, noise.argsort(dim=1)[:, :4])
    assert torch.equal(torch.gather(noise.argsort(dim=1), 1, restore3), torch.arange(16).expand(3, -1))


def test_masking_with_padding_never_masks_padding():
    valid = torch.tensor([[1] * 10 + [0] * 6, [1] * 3 + [0] * 13], dtype=torch.bool)
    mask = random_masking_with_padding(valid, 0.5, generator=torch.Generator().manual_seed(0))
    assert not (mask & ~valid).any()
    assert mask.sum(dim=1).tolist() == [5, 2]  # round(3 * 0.5) = 2 keeps one of three


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5, True])
def test_mask_ratio_outside_the_open_interval_is_rejected(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(2, 16, ratio)


def test_inputs_too_short_to_mask_are_rejected():
    with pytest.raises(ValueError, match="too short to mask"):
        random_masking(2, 1, 0.5)
    with pytest.raises(ValueError, match="too short to mask"):
        random_masking_with_padding(torch.tensor([[1, 0, 0], [1, 1, 0]], dtype=torch.bool), 0.5)


def test_masking_over_batch_masks_a_batch_wide_count_never_padding():
    valid = torch.tensor([[1] * 6 + [0] * 2, [1] * 2 + [0] * 6, [1] * 7 + [0]], dtype=torch.bool)  # 15 items
    for seed in range(5):
        mask = random_masking_over_batch(valid, 0.5, generator=torch.Generator().manual_seed(seed))
        assert int(mask.sum()) == int(15 * 0.5) == 7  # over the whole batch, rounded down
        assert not (mask & ~valid).any()
    # The items of smallest noise over the batch: here all of sample 0 and one of sample 2, none of sample 1.
    noise = torch.rand(3, 8, generator=torch.Generator().manual_seed(0)) + 1.0
    noise[0, :6] = 0.1
    noise[2, 3] = 0.5
    noise[~valid] = -1.0  # padding never counts, however small its noise
    mask = random_masking_over_batch(valid, 0.5, noise=noise)
    expected = torch.zeros_like(valid)
    expected[0, :6] = expected[2, 3] = True
    assert torch.equal(mask, expected)
    # At least one item masked and one kept over the batch.
    assert int(random_masking_over_batch(valid, 0.01).sum()) == 1
    assert int(random_masking_over_batch(valid, 0.99).sum()) == 14
    first = random_masking_over_batch(valid, 0.3, generator=torch.Generator().manual_seed(4))
    second = random_masking_over_batch(valid, 0.3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second)


def test_masking_over_batch_bad_input():
    with pytest.raises(ValueError, match="too short to mask"):
        random_masking_over_batch(torch.tensor([[1, 0], [0, 0]], dtype=torch.bool), 0.5)
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking_over_batch(torch.ones(2, 4, dtype=torch.bool), 1.0)
    with pytest.raises(ValueError, match=r"`noise` must have shape \(2, 4\)"):
        random_masking_over_batch(torch.ones(2, 4, dtype=torch.bool), 0.5, noise=torch.rand(2, 3))
