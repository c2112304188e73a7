"""Graph processor for the mmfm graph encoder: graphs -> `node_features`, `attention_mask`, `edge_index`.

A graph may be given as a dict (the demo corpus row format), a networkx graph or a PyG `Data`-like object;
the three give identical outputs for the same graph. Nothing is truncated: a graph larger than `max_nodes`
raises.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .mmfm_processing_validation import (
    check_bool,
    check_finite,
    check_int,
    check_return_tensors,
    describe,
    is_array_like,
    make_batch_feature,
    to_numpy,
)
from .mmfm_processor_config import OwnSettingsMixin

logger = logging.get_logger(__name__)

EDGE_PADDING = -1


class MMFMGraphProcessor(OwnSettingsMixin, FeatureExtractionMixin):
    r"""Batches graphs for the mmfm graph encoder, with zero-padded nodes and -1-padded edge lists.

    Accepted graphs (one, or a list):

    - a dict `{"num_nodes": int, "edge_index": ..., "node_features": (N, F) optional}`, the demo corpus row
      format (other keys, e.g. labels, are ignored). `edge_index` is a (2, E) array/tensor/nested list (row 0
      = sources, row 1 = targets) or a list of `(src, dst)` tuples. A list of exactly two lists is read as
      (2, E); give pairs as tuples when E == 2 to avoid the ambiguity. `num_nodes` may be omitted when
      `node_features` is given. A dict of lists whose `num_nodes` is a list (a `datasets` batch) is a batch.
    - a networkx graph: nodes are relabelled 0..N-1 in sorted order (insertion order if the labels cannot
      be sorted); node features come from the node attribute `node_feature_key` (on all nodes or none).
    - a PyG `Data`-like object (duck-typed, torch_geometric is not imported): `edge_index`, `num_nodes` and
      optional `x`. A PyG `Batch` (has `to_data_list`) is split into its graphs.

    A graph without node features gets ones (N, `node_feature_size`).

    Args:
        node_feature_size: number of features per node, F (1).
        max_nodes: largest allowed graph; None (default) = unlimited. Larger graphs raise `ValueError`.
        make_undirected: add the reverse of every edge and drop duplicate edges (True). Edges are then sorted
            by (source, target). When False, edges keep their order and multiplicity.
        add_self_loops: add an edge i -> i for each node that has none (False).
        node_feature_key: node attribute holding features in networkx graphs ("x").

    Returns (from `__call__`):
        `BatchFeature` with `node_features` float32 (B, N, F) zero-padded, `attention_mask` int64 (B, N)
        (1 = real node), `edge_index` int64 (B, 2, E) with local node ids, padded with -1 to the largest edge
        count of the batch (E >= 1). N is the largest graph of the batch. For the transformers default
        `return_tensors=None`, lists of per-graph arrays (padded likewise).
    """

    model_input_names = ["node_features", "attention_mask", "edge_index"]
    # `save_pretrained` copies this file and its sibling imports into the folder and writes `auto_map`,
    # so `AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)` loads it without mmfm.
    _auto_class = "AutoFeatureExtractor"
    # This processor's entry in a composite MMFMProcessor's processor_config.json.
    processor_config_key = "graph_feature_extractor"

    def __init__(
        self,
        node_feature_size: int = 1,
        max_nodes: int | None = None,
        make_undirected: bool = True,
        add_self_loops: bool = False,
        node_feature_key: str = "x",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.node_feature_size = check_int("node_feature_size", node_feature_size, minimum=1)
        self.max_nodes = check_int("max_nodes", max_nodes, minimum=1, allow_none=True)
        self.make_undirected = check_bool("make_undirected", make_undirected)
        self.add_self_loops = check_bool("add_self_loops", add_self_loops)
        if not isinstance(node_feature_key, str):
            raise TypeError(f"`node_feature_key` must be a str, got {describe(node_feature_key)}.")
        self.node_feature_key = node_feature_key

    def __call__(self, graphs: Any, return_tensors: str | None = None) -> BatchFeature:
        """Validate and batch one graph or a list of graphs.

        Args:
            graphs: a graph or a list of graphs (see the class docstring).
            return_tensors: "pt", "np" or None (default, transformers' convention: lists of per-graph arrays).

        Returns:
            `BatchFeature` with `node_features` (B, N, F) float32, `attention_mask` (B, N) int64 and
            `edge_index` (B, 2, E) int64.
        """
        return_tensors = check_return_tensors(return_tensors)
        items = self._split_batch(graphs)
        parsed = [self.process_graph(graph, field) for graph, field in items]
        return self._pad(parsed, return_tensors)

    # ----------------------------------------------------------------------------------------------------
    # One graph
    # ----------------------------------------------------------------------------------------------------

    def process_graph(self, graph: Any, field: str = "graph") -> tuple[np.ndarray, np.ndarray]:
        """Validate one graph and return `(node_features (N, F) float32, edge_index (2, E) int64)`."""
        if isinstance(graph, dict):
            num_nodes, edge_index, features = self._read_dict(graph, field)
            features_field = f"{field}['node_features']"
        elif _is_networkx(graph):
            num_nodes, edge_index, features = self._read_networkx(graph, field)
            features_field = f"{field} node attribute {self.node_feature_key!r}"
        elif hasattr(graph, "edge_index") and hasattr(graph, "num_nodes"):
            num_nodes = self._check_num_nodes(graph.num_nodes, f"{field}.num_nodes")
            edge_index = self._check_edge_index(graph.edge_index, num_nodes, f"{field}.edge_index")
            features = self._check_features(getattr(graph, "x", None), num_nodes, f"{field}.x")
            return features, self._finish_edges(edge_index, num_nodes)
        else:
            raise TypeError(
                f"`{field}` must be a dict with `num_nodes`/`edge_index`/`node_features`, a networkx graph "
                f"or a PyG Data-like object with `edge_index` and `num_nodes`, got {describe(graph)}."
            )
        features = self._check_features(features, num_nodes, features_field)
        return features, self._finish_edges(edge_index, num_nodes)

    def _read_dict(self, graph: dict, field: str) -> tuple[int, np.ndarray, Any]:
        features = graph.get("node_features")
        if "edge_index" not in graph:
            raise ValueError(
                f"`{field}` has no 'edge_index' key (keys: {sorted(graph)}): expected a (2, E) edge list, "
                "possibly empty ([[], []])."
            )
        if graph.get("num_nodes") is None:
            if features is None:
                raise ValueError(
                    f"`{field}` has neither 'num_nodes' nor 'node_features': expected at least one of them "
                    "to know the number of nodes."
                )
            num_nodes = len(features)
        else:
            num_nodes = graph["num_nodes"]
        num_nodes = self._check_num_nodes(num_nodes, f"{field}['num_nodes']")
        edge_index = self._check_edge_index(graph["edge_index"], num_nodes, f"{field}['edge_index']")
        return num_nodes, edge_index, features

    def _read_networkx(self, graph: Any, field: str) -> tuple[int, np.ndarray, Any]:
        nodes = list(graph.nodes)
        try:
            nodes = sorted(nodes)
        except TypeError:
            pass  # labels of mixed types: keep insertion order
        num_nodes = self._check_num_nodes(len(nodes), f"{field}.number_of_nodes()")
        index = {node: i for i, node in enumerate(nodes)}
        pairs = [(index[src], index[dst]) for src, dst in graph.edges()]
        edge_index = np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T
        if not graph.is_directed() and not self.make_undirected:
            # An undirected networkx graph lists each edge once; as a directed edge list it means both ways
            # (a self-loop only once).
            reverse = edge_index[::-1][:, edge_index[0] != edge_index[1]]
            edge_index = np.concatenate([edge_index, reverse], axis=1)
        key = self.node_feature_key
        has = [key in graph.nodes[node] for node in nodes]
        if all(has):
            features = [graph.nodes[node][key] for node in nodes]
            try:
                features = np.stack(
                    [
                        to_numpy(x, f"{field}.nodes[{n!r}][{key!r}]")
                        for x, n in zip(features, nodes, strict=True)
                    ]
                )
            except ValueError as err:
                raise ValueError(
                    f"`{field}` node attribute {key!r} must have the same shape on every node: {err}"
                ) from None
        elif any(has):
            missing = [node for node, ok in zip(nodes, has, strict=True) if not ok]
            raise ValueError(
                f"`{field}` has node attribute {key!r} on {sum(has)} of {num_nodes} nodes: expected it on "
                f"all or none (missing on nodes {missing[:5]}{'...' if len(missing) > 5 else ''})."
            )
        else:
            features = None
        return num_nodes, edge_index, features

    def _check_num_nodes(self, num_nodes: Any, field: str) -> int:
        if hasattr(num_nodes, "item") and getattr(num_nodes, "ndim", 1) == 0:
            num_nodes = num_nodes.item()
        num_nodes = check_int(field, num_nodes)
        if num_nodes <= 0:
            raise ValueError(
                f"`{field}` is {num_nodes}: an empty graph cannot be encoded, expected >= 1 node."
            )
        if self.max_nodes is not None and num_nodes > self.max_nodes:
            raise ValueError(
                f"`{field}` is {num_nodes}, more than `max_nodes`={self.max_nodes}. Graphs are never "
                "truncated: raise `max_nodes` or filter such graphs out of the data set."
            )
        return num_nodes

    @staticmethod
    def _check_edge_index(edge_index: Any, num_nodes: int, field: str) -> np.ndarray:
        if not is_array_like(edge_index):
            raise TypeError(
                f"`{field}` must be a (2, E) array/tensor/list or a list of (src, dst) tuples, got "
                f"{describe(edge_index)}."
            )
        if isinstance(edge_index, list | tuple) and len(edge_index) == 0:
            return np.zeros((2, 0), dtype=np.int64)
        # Pairs: every item has length 2, and either they are tuples or there are not exactly two of them
        # (a list of two lists is the corpus's (2, E) format).
        is_pairs = (
            isinstance(edge_index, list | tuple)
            and all(isinstance(e, list | tuple) and len(e) == 2 for e in edge_index)
            and (all(isinstance(e, tuple) for e in edge_index) or len(edge_index) != 2)
        )
        array = to_numpy(edge_index, field, kinds="iuf")
        if is_pairs:
            array = array.reshape(-1, 2).T if array.size else np.zeros((2, 0), dtype=np.int64)
        if array.ndim != 2 or array.shape[0] != 2:
            hint = (
                " It looks like (E, 2): pass its transpose."
                if array.ndim == 2 and array.shape[1] == 2
                else ""
            )
            raise ValueError(f"`{field}` must be shaped (2, E), got {describe(array)}.{hint}")
        if array.dtype.kind == "f":
            if array.size and not (np.isfinite(array).all() and (array == np.round(array)).all()):
                raise ValueError(
                    f"`{field}` must hold integer node ids, got non-integer values ({describe(array)})."
                )
        array = array.astype(np.int64)
        if array.size:
            low, high = int(array.min()), int(array.max())
            if low < 0:
                raise ValueError(
                    f"`{field}` holds a negative node id {low}: expected ids in [0, num_nodes={num_nodes})."
                )
            if high >= num_nodes:
                raise ValueError(
                    f"`{field}` holds node id {high} but num_nodes={num_nodes}: expected ids in [0, "
                    f"{num_nodes}). Ids are local to each graph and start at 0."
                )
        return array

    def _check_features(self, features: Any, num_nodes: int, field: str) -> np.ndarray:
        if features is None:
            return np.ones((num_nodes, self.node_feature_size), dtype=np.float32)
        array = to_numpy(features, field, kinds="iufb")
        if array.ndim == 1 and self.node_feature_size == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[0] != num_nodes or array.shape[1] != self.node_feature_size:
            raise ValueError(
                f"`{field}` must be shaped (num_nodes, node_feature_size) = ({num_nodes}, "
                f"{self.node_feature_size}), got {describe(array)}. Set `node_feature_size` to match the "
                "data or fix the features."
            )
        check_finite(array, field)
        return array.astype(np.float32)

    def _finish_edges(self, edge_index: np.ndarray, num_nodes: int) -> np.ndarray:
        if self.make_undirected:
            edge_index = np.unique(np.concatenate([edge_index, edge_index[::-1]], axis=1), axis=1)
        if self.add_self_loops:
            has_loop = np.zeros(num_nodes, dtype=bool)
            has_loop[edge_index[0][edge_index[0] == edge_index[1]]] = True
            missing = np.flatnonzero(~has_loop)
            edge_index = np.concatenate([edge_index, np.stack([missing, missing])], axis=1)
            if self.make_undirected:
                edge_index = np.unique(edge_index, axis=1)
        return edge_index.astype(np.int64)

    # ----------------------------------------------------------------------------------------------------
    # Batch
    # ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _split_batch(graphs: Any) -> list[tuple[Any, str]]:
        if isinstance(graphs, dict) and isinstance(graphs.get("num_nodes"), list | tuple | np.ndarray):
            # A `datasets` batch: dict of columns -> list of rows.
            size = len(graphs["num_nodes"])
            for key, column in graphs.items():
                if not isinstance(column, list | tuple | np.ndarray) or len(column) != size:
                    raise ValueError(
                        f"`graphs` looks like a batch of columns (num_nodes has {size} rows) but column "
                        f"{key!r} is {describe(column)}: expected {size} rows."
                    )
            graphs = [{key: column[i] for key, column in graphs.items()} for i in range(size)]
        elif hasattr(graphs, "to_data_list") and hasattr(graphs, "num_graphs"):
            graphs = graphs.to_data_list()
        if isinstance(graphs, list | tuple):
            if len(graphs) == 0:
                raise ValueError("`graphs` is an empty list: expected at least one graph.")
            return [(graph, f"graphs[{i}]") for i, graph in enumerate(graphs)]
        return [(graphs, "graphs")]

    def _pad(self, parsed: list[tuple[np.ndarray, np.ndarray]], return_tensors: str | None) -> BatchFeature:
        batch = len(parsed)
        max_nodes = max(features.shape[0] for features, _ in parsed)
        max_edges = max(1, max(edges.shape[1] for _, edges in parsed))
        node_features = np.zeros((batch, max_nodes, self.node_feature_size), dtype=np.float32)
        attention_mask = np.zeros((batch, max_nodes), dtype=np.int64)
        edge_index = np.full((batch, 2, max_edges), EDGE_PADDING, dtype=np.int64)
        for i, (features, edges) in enumerate(parsed):
            node_features[i, : len(features)] = features
            attention_mask[i, : len(features)] = 1
            edge_index[i, :, : edges.shape[1]] = edges
        data = {"node_features": node_features, "attention_mask": attention_mask, "edge_index": edge_index}
        return make_batch_feature(data, return_tensors)


def _is_networkx(graph: Any) -> bool:
    """True for networkx graphs, without importing networkx unless the object comes from it."""
    networkx = sys.modules.get("networkx")  # not imported yet: the object cannot be a networkx graph
    return networkx is not None and isinstance(graph, networkx.Graph)


__all__ = ["MMFMGraphProcessor"]
