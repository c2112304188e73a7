"""Retrieval metrics against hand-computed rankings: paired and labelled, ties, chance levels, input errors."""

import numpy as np
import pytest
import torch

from mmfm.evaluation import chance_recall, cross_modal_retrieval, retrieval_metrics, retrieval_ranks


def basis(n: int, dim: int | None = None) -> np.ndarray:
    return np.eye(n, dim or n, dtype=np.float32)


def test_perfect_retrieval_scores_one():
    query = basis(4) * np.array([[1.0], [2.0], [0.5], [3.0]], dtype=np.float32)  # norms do not matter
    metrics = retrieval_metrics(query, basis(4), ks=(1, 2))
    assert metrics == {
        "recall@1": 1.0,
        "recall@2": 1.0,
        "num_queries": 4,
        "num_gallery": 4,
        "chance@1": 0.25,
        "chance@2": 0.5,
    }


def circulant(values) -> np.ndarray:
    """Gallery row j = `values` rolled by j: with one-hot queries, similarity(i, j) ∝ values[(i - j) % n],
    and every row has the same norm, so the ranking follows `values`."""
    return np.stack([np.roll(values, j) for j in range(len(values))]).astype(np.float32)


def test_reversed_gallery_ranks_last():
    # The correct item (values[0]) is the least similar for every query.
    gallery = circulant([0.0, 1.0, 2.0, 3.0])
    assert retrieval_ranks(basis(4), gallery).tolist() == [4, 4, 4, 4]
    metrics = retrieval_metrics(basis(4), gallery, ks=(1, 3, 4))
    assert (metrics["recall@1"], metrics["recall@3"], metrics["recall@4"]) == (0.0, 0.0, 1.0)


def test_ranks_by_hand():
    # values[0] = 1 is beaten by 3 and 2: every match ranks third.
    gallery = circulant([1.0, 3.0, 0.0, 2.0])
    assert retrieval_ranks(basis(4), gallery).tolist() == [3, 3, 3, 3]
    # Mixed: queries weighted towards their match differently.
    query = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    gallery = np.array([[1, 0], [0, 1], [0.8, 0.6]], dtype=np.float32)
    # q0 -> sims [1, 0, .8]: rank 1. q1 -> [.6, .8, .96]: match row 1 rank 2. q2 -> [0, 1, .6]: row 2 rank 2.
    assert retrieval_ranks(query, gallery).tolist() == [1, 2, 2]
    metrics = retrieval_metrics(query, gallery, ks=(1, 2))
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["recall@2"] == 1.0


def test_ties_are_broken_by_gallery_index():
    # Every embedding equal: query i finds its match at rank i + 1, so recall@k is exactly chance.
    same = np.ones((5, 3), dtype=np.float32)
    assert retrieval_ranks(same, same).tolist() == [1, 2, 3, 4, 5]
    metrics = retrieval_metrics(same, same, ks=(1, 2, 5))
    for k in (1, 2, 5):
        assert metrics[f"recall@{k}"] == metrics[f"chance@{k}"] == chance_recall(5, k)
    # A duplicated gallery row: the lower index wins the tie, so query 2 (equal to query 0) misses at 1.
    gallery = basis(3)
    gallery[2] = gallery[0]
    query = basis(3)
    query[2] = query[0]
    assert retrieval_ranks(query, gallery).tolist() == [1, 1, 2]


def test_ties_survive_float_noise():
    # Two gallery copies of one row, the second with float32-sized noise (as a duplicate embedded in another
    # batch gets): they tie, so of two equal queries the first finds its match at rank 1, the second at 2.
    rng = np.random.default_rng(0)
    for _ in range(20):
        row = rng.normal(size=(1, 32)).astype(np.float32)
        noisy = row * (1 + rng.normal(scale=1e-7, size=row.shape)).astype(np.float32)
        query = np.repeat(row + rng.normal(size=row.shape).astype(np.float32), 2, axis=0)
        assert retrieval_ranks(query, np.concatenate([row, noisy])).tolist() == [1, 2]
        assert retrieval_ranks(query[:, ::-1], np.concatenate([row, noisy])[:, ::-1]).tolist() == [1, 2]


def test_labels_variant_counts_any_item_of_the_label():
    query = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    gallery = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [-1, 0]], dtype=np.float32)
    query_labels = np.array(["a", "b", "c"])
    gallery_labels = np.array(["b", "a", "b", "c"])
    # Query 0 ([1, 0]): gallery by similarity rows 0 (b), 2 (b), 1 (a), 3 (c) -> first "a" at rank 3.
    # Query 1 ([0, 1]): rows 1 (a), 0 (b) -> rank 2.  Query 2 ([1, 1]): row 3 (c) is least similar -> rank 4.
    assert retrieval_ranks(query, gallery, query_labels, gallery_labels).tolist() == [3, 2, 4]
    metrics = retrieval_metrics(query, gallery, (1, 3), query_labels, gallery_labels)
    assert metrics["recall@1"] == 0.0
    assert metrics["recall@3"] == pytest.approx(2 / 3)
    assert metrics["num_queries"] == 3 and metrics["num_gallery"] == 4
    assert metrics["num_queries_without_match"] == 0
    # Chance: queries "a" and "c" have one correct item of 4, query "b" two.
    assert metrics["chance@1"] == pytest.approx((1 / 4 + 2 / 4 + 1 / 4) / 3)
    assert metrics["chance@3"] == pytest.approx((3 / 4 + 1 + 3 / 4) / 3)


def test_labels_variant_leaves_out_queries_without_match(caplog):
    query, gallery = basis(3), basis(3)
    metrics = retrieval_metrics(query, gallery, (1,), [0, 1, 7], [0, 1, 2])
    assert metrics["num_queries"] == 2 and metrics["num_queries_without_match"] == 1
    assert metrics["recall@1"] == 1.0
    assert "no gallery item of their label" in caplog.text
    with pytest.raises(ValueError, match="No query label occurs"):
        retrieval_metrics(query, gallery, (1,), [5, 6, 7], [0, 1, 2])


def test_chance_recall_formulas():
    assert chance_recall(10, 1) == pytest.approx(0.1)
    assert chance_recall(10, 5) == pytest.approx(0.5)
    assert chance_recall(3, 10) == 1.0  # min(k, n) / n
    # Two correct items among 4, top-1 and top-2: 1 - C(2, k) / C(4, k).
    assert chance_recall(4, 1, 2) == pytest.approx(0.5)
    assert chance_recall(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert chance_recall(4, 2, [1, 2]) == pytest.approx((0.5 + 5 / 6) / 2)
    # Against a brute-force count of all top-k subsets.
    from itertools import combinations

    n, k, m = 7, 3, 2
    subsets = list(combinations(range(n), k))
    assert chance_recall(n, k, m) == pytest.approx(sum(any(i < m for i in s) for s in subsets) / len(subsets))
    with pytest.raises(ValueError, match="num_relevant"):
        chance_recall(4, 1, 5)
    with pytest.raises(ValueError, match="`k`"):
        chance_recall(4, 0)


def test_cross_modal_retrieval_both_directions():
    text = basis(3)
    vision = basis(3)[[0, 2, 1]]  # text 1 <-> vision 1 is wrong: vision rows 1 and 2 are swapped
    both = cross_modal_retrieval(text, vision, names=("text", "vision"), ks=(1,))
    assert list(both) == ["text_to_vision", "vision_to_text"]
    assert both["text_to_vision"]["recall@1"] == pytest.approx(1 / 3)
    assert both["vision_to_text"]["recall@1"] == pytest.approx(1 / 3)
    torch_both = cross_modal_retrieval(torch.from_numpy(text), torch.from_numpy(vision), ks=(1,))
    assert torch_both == both


def test_chunking_does_not_change_ranks():
    rng = np.random.default_rng(1)
    query, gallery = rng.normal(size=(37, 8)), rng.normal(size=(37, 8))
    np.testing.assert_array_equal(
        retrieval_ranks(query, gallery, chunk_size=5), retrieval_ranks(query, gallery, chunk_size=1000)
    )
    labels = rng.integers(0, 4, size=37)
    np.testing.assert_array_equal(
        retrieval_ranks(query, gallery, labels, labels, chunk_size=3),
        retrieval_ranks(query, gallery, labels, labels),
    )


def test_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="Paired retrieval needs as many"):
        retrieval_metrics(basis(3), basis(4, 3))
    with pytest.raises(ValueError, match="dimensions"):
        retrieval_metrics(basis(3), basis(3, 4))
    with pytest.raises(ValueError, match="both `query_labels` and `gallery_labels`"):
        retrieval_metrics(basis(3), basis(3), query_labels=[0, 1, 2])
    with pytest.raises(ValueError, match="`ks`"):
        retrieval_metrics(basis(3), basis(3), ks=(0,))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.full((2, 2), np.nan), basis(2))
    with pytest.raises(ValueError, match="same kind"):
        retrieval_metrics(basis(2), basis(2), query_labels=[0, 1], gallery_labels=["0", "1"])
    with pytest.raises(ValueError, match="two different names"):
        cross_modal_retrieval(basis(2), basis(2), names=("text", "text"))
