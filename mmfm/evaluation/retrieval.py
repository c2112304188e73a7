"""Cross-modal retrieval: Recall@K of ranking a gallery by cosine similarity to each query (CLIP, ImageBind).

    metrics = retrieval_metrics(text_embeddings, image_embeddings)           # row i matches row i
    both = cross_modal_retrieval(text_embeddings, image_embeddings, names=("text", "vision"))
    both["text_to_vision"]["recall@1"], chance_recall(len(text_embeddings), 1)

Paired data: query row i's only correct gallery item is gallery row i. Labelled data (`query_labels`,
`gallery_labels`): every gallery item with the query's label is correct (emergent audio <-> image retrieval by
digit class, or captions that repeat). Recall@K is the fraction of queries with a correct item among the K
most similar gallery items.

Ties are broken by index, deterministically: the gallery is ranked by decreasing cosine similarity, and items
of equal similarity by increasing gallery index (a stable sort). So duplicated gallery rows rank in index
order, and a collapsed model whose embeddings are all equal scores exactly chance (query i of a paired set
finds its match at rank i + 1), neither 0 nor a perfect score. Similarities within `TIE_TOLERANCE` (1e-6,
about the precision of float32 embeddings) count as equal, so duplicated inputs whose embeddings differ in
the last bits (another batch, another device) still tie; the query's correct item at similarity s ranks
after every item above s + tolerance and after the items of lower index within the tolerance.
With labels, the ranked position of a query's first correct item counts; with duplicated captions in paired
data, pass the captions as labels so that each identical caption counts as a hit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._checks import check_features, check_labels

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 5, 10)
# Cosine similarities closer than this count as ties (broken by index): float32 noise, not a preference.
TIE_TOLERANCE = 1e-6


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The distinct positive K of `ks`, in the given order."""
    if isinstance(ks, int | np.integer) and not isinstance(ks, bool):
        ks = (ks,)
    if isinstance(ks, str) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"`ks` must be a non-empty sequence of positive integers, got {ks!r}.")
    return tuple(dict.fromkeys(_check_positive_int(k, "ks") for k in ks))


def chance_recall(n: int, k: int, num_relevant: int | Sequence[int] | np.ndarray = 1) -> float:
    """Expected Recall@K of a uniformly random ranking of `n` gallery items.

    With `m` correct items among `n`, a random top-K holds one of them with probability
    1 - C(n - m, K) / C(n, K); for paired data (m = 1) that is min(K, n) / n. An array of `num_relevant`
    (one count per query) gives the mean over the queries.

    Raises:
        ValueError: `n` or `k` not a positive integer, or a count outside 0..n.
    """
    n, k = _check_positive_int(n, "n"), _check_positive_int(k, "k")
    counts = np.atleast_1d(np.asarray(num_relevant))
    if counts.size == 0 or counts.dtype.kind not in "iu" or counts.min() < 0 or counts.max() > n:
        raise ValueError(f"`num_relevant` must be integers in 0..{n} (n), got {num_relevant!r}.")
    values = {}
    for m in np.unique(counts).tolist():
        # C(n - m, k) / C(n, k) = prod_{i < k} (n - m - i) / (n - i): the chance that all K picks miss.
        if m == 1:
            values[m] = min(k, n) / n  # the same, without the rounding of 1 - (n - k) / n
        else:
            miss = 0.0 if k > n - m else math.prod((n - m - i) / (n - i) for i in range(k))
            values[m] = 1.0 - miss
    return float(np.mean([values[m] for m in counts.tolist()]))


def _unit_rows(features: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(features)).double(), dim=1)


def _label_codes(query_labels: Any, gallery_labels: Any, num_query: int, num_gallery: int):
    query = check_labels(query_labels, num_query, "query_labels")
    gallery = check_labels(gallery_labels, num_gallery, "gallery_labels")
    numeric = {"query_labels": query.dtype.kind in "iufb", "gallery_labels": gallery.dtype.kind in "iufb"}
    if len(set(numeric.values())) > 1:
        raise ValueError(
            f"`query_labels` are {'numbers' if numeric['query_labels'] else 'not numbers'} but "
            f"`gallery_labels` are {'numbers' if numeric['gallery_labels'] else 'not numbers'}: labels are "
            "compared by value, so both must use the same kind (e.g. both class ids)."
        )
    _, codes = np.unique(np.concatenate([query, gallery]), return_inverse=True)
    codes = torch.as_tensor(codes.reshape(-1), dtype=torch.long)
    return codes[:num_query], codes[num_query:]


def ranked_ahead(similarity: torch.Tensor, target: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
    """(Q, N) mask of the items ranked before each query's target item (similarity `target` (Q, 1), column
    `target_index` (Q,)): more similar by over `TIE_TOLERANCE`, or tied within it and of lower index."""
    index = torch.arange(similarity.shape[1])
    tied = (similarity - target).abs() <= TIE_TOLERANCE
    return (similarity > target + TIE_TOLERANCE) | (tied & (index[None, :] < target_index[:, None]))


def retrieval_ranks(
    query: Any,
    gallery: Any,
    query_labels: Any = None,
    gallery_labels: Any = None,
    chunk_size: int = 1024,
) -> np.ndarray:
    """The 1-based rank of each query's first correct gallery item (0 when it has none).

    Args:
        query: (N_q, D) embeddings (array or tensor); normalised here, so cosine similarity ranks.
        gallery: (N_g, D) embeddings; without labels N_g must equal N_q and row i is query i's match.
        query_labels, gallery_labels: (N_q,) and (N_g,) labels, both or neither; with them, every gallery
            item of the query's label is correct.
        chunk_size: queries ranked at once; memory is O(chunk_size * N_g).

    Returns:
        (N_q,) int64 ranks; ties are broken by gallery index (see the module docstring).
    """
    query = check_features(query, "query")
    gallery = check_features(gallery, "gallery")
    if gallery.shape[1] != query.shape[1]:
        raise ValueError(
            f"`query` has {query.shape[1]} dimensions but `gallery` has {gallery.shape[1]}: both must be "
            "embeddings of one shared space."
        )
    if (query_labels is None) != (gallery_labels is None):
        raise ValueError("Pass both `query_labels` and `gallery_labels`, or neither (paired data).")
    chunk_size = _check_positive_int(chunk_size, "chunk_size")
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    if query_labels is None:
        if num_query != num_gallery:
            raise ValueError(
                f"Paired retrieval needs as many queries as gallery items (row i matches row i), got "
                f"{num_query} and {num_gallery}; for unpaired data pass `query_labels` and `gallery_labels`."
            )
        query_codes = gallery_codes = None
    else:
        query_codes, gallery_codes = _label_codes(query_labels, gallery_labels, num_query, num_gallery)
    query, gallery = _unit_rows(query), _unit_rows(gallery)
    index = torch.arange(num_gallery)
    ranks = []
    for start in range(0, num_query, chunk_size):
        stop = min(start + chunk_size, num_query)
        similarity = query[start:stop] @ gallery.T  # (chunk, N_g)
        if query_codes is None:
            relevant = index[None, :] == torch.arange(start, stop)[:, None]
        else:
            relevant = query_codes[start:stop, None] == gallery_codes[None, :]
        has_match = relevant.any(dim=1)
        # The first correct item in ranked order: the most similar correct one, lowest index among ties.
        best = similarity.masked_fill(~relevant, -math.inf).amax(dim=1, keepdim=True)
        first = (relevant & (similarity >= best - TIE_TOLERANCE)).int().argmax(dim=1)  # the first True
        target = similarity.gather(1, first[:, None])
        ahead = ranked_ahead(similarity, target, first)
        ranks.append(torch.where(has_match, ahead.sum(dim=1) + 1, 0))
    return torch.cat(ranks).numpy().astype(np.int64)


def retrieval_metrics(
    query: Any,
    gallery: Any,
    ks: Sequence[int] = DEFAULT_KS,
    query_labels: Any = None,
    gallery_labels: Any = None,
    chunk_size: int = 1024,
) -> dict[str, Any]:
    """Recall@K of retrieving each query's correct gallery items by cosine similarity.

    Args:
        query: (N_q, D) query embeddings.
        gallery: (N_g, D) gallery embeddings; for paired data (no labels) N_g == N_q and row i matches row i.
        ks: the K of Recall@K; a K above N_g scores every query that has a match.
        query_labels, gallery_labels: both or neither; a hit is any gallery item with the query's label.
            Queries whose label no gallery item has cannot be scored: they are left out (and counted).
        chunk_size: queries ranked at once.

    Returns:
        `{"recall@K": float for each K, "num_queries", "num_gallery", "chance@K": float for each K}`, where
        `chance@K` is the expected Recall@K of a random ranking given each query's number of correct items
        (`chance_recall`; `min(K, N) / N` for paired data); with labels also `"num_queries_without_match"`
        (the queries left out).

    Raises:
        ValueError: shapes that do not match, NaN/infinite values, bad `ks`, or labels no query shares with
            the gallery.
    """
    ks = check_ks(ks)
    ranks = retrieval_ranks(query, gallery, query_labels, gallery_labels, chunk_size)
    num_gallery = int(np.shape(gallery)[0])
    scored = ranks > 0
    report: dict[str, Any] = {}
    if query_labels is not None:
        unmatched = int((~scored).sum())
        if unmatched == len(ranks):
            raise ValueError(
                "No query label occurs among the gallery labels: nothing can be retrieved. Check that both "
                "sides use the same label ids (e.g. the same ClassLabel order)."
            )
        if unmatched:
            logger.warning(
                "%d of %d queries have no gallery item of their label and are left out.",
                unmatched,
                len(ranks),
            )
    ranks = ranks[scored]
    for k in ks:
        report[f"recall@{k}"] = float((ranks <= k).mean())
    report["num_queries"] = len(ranks)
    report["num_gallery"] = num_gallery
    if query_labels is None:
        counts = np.ones(len(ranks), dtype=np.int64)
    else:
        report["num_queries_without_match"] = unmatched
        query_codes, gallery_codes = _label_codes(query_labels, gallery_labels, len(scored), num_gallery)
        counts = np.bincount(gallery_codes.numpy(), minlength=int(query_codes.max()) + 1)[query_codes.numpy()]
        counts = counts[scored]
    for k in ks:
        report[f"chance@{k}"] = chance_recall(num_gallery, k, counts)
    return report


def cross_modal_retrieval(
    a: Any,
    b: Any,
    names: Sequence[str] = ("text", "vision"),
    ks: Sequence[int] = DEFAULT_KS,
    a_labels: Any = None,
    b_labels: Any = None,
    chunk_size: int = 1024,
) -> dict[str, dict[str, Any]]:
    """Retrieval in both directions between two sets of embeddings (paired, or by label).

    Args:
        a, b: (N_a, D) and (N_b, D) embeddings of two modalities, named by `names`.
        names: the two modality names, which make the keys `"<a>_to_<b>"` and `"<b>_to_<a>"`.
        ks, chunk_size: see `retrieval_metrics`.
        a_labels, b_labels: both or neither; see `retrieval_metrics`.

    Returns:
        `{"<a>_to_<b>": retrieval_metrics(a, b), "<b>_to_<a>": retrieval_metrics(b, a)}`.
    """
    if isinstance(names, str) or len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"`names` must be two different names, e.g. ('text', 'vision'), got {names!r}.")
    first, second = names
    return {
        f"{first}_to_{second}": retrieval_metrics(a, b, ks, a_labels, b_labels, chunk_size),
        f"{second}_to_{first}": retrieval_metrics(b, a, ks, b_labels, a_labels, chunk_size),
    }


__all__ = [
    "DEFAULT_KS",
    "TIE_TOLERANCE",
    "chance_recall",
    "check_ks",
    "cross_modal_retrieval",
    "retrieval_metrics",
    "retrieval_ranks",
]
