"""The graph modality: node counts, edge lists and node features -> padded dense graph batches; real
nodes count throughput."""

from __future__ import annotations

import numpy as np

from ..models import MMFMGraphModel
from ..processing import MMFMGraphProcessor
from .spec import ModalitySpec, count_real


def build_processor(config, tokenizer=None) -> MMFMGraphProcessor:
    return MMFMGraphProcessor(node_feature_size=config.node_feature_size)


def graph_items(rows: dict[str, list], text_column: str) -> tuple[list[dict], dict]:
    keys = [key for key in ("num_nodes", "edge_index", "node_features") if key in rows]
    graphs = []
    for values in zip(*(rows[key] for key in keys)):
        graph = dict(zip(keys, values))
        # `[[], []]` and `[[s...], [t...]]` are both (2, E); an array makes E == 2 unambiguous too.
        graph["edge_index"] = np.asarray(graph["edge_index"], dtype=np.int64).reshape(2, -1)
        if graph.get("node_features") is not None:
            graph["node_features"] = np.asarray(graph["node_features"], dtype=np.float32)
        graphs.append(graph)
    return graphs, {}


def count_nodes(inputs, config) -> int:
    """Real nodes (the processor's `attention_mask`), not the padding slots of the batch."""
    return count_real(inputs, "node_features")


def node_feature_width(first_row: dict) -> dict:
    """The node-feature width F of the data (1 for graphs without features, filled with ones)."""
    features = first_row.get("node_features")
    if features is None:
        return {}
    return {"node_feature_size": len(features[0]) if len(features) else 1}


SPEC = ModalitySpec(
    name="graph",
    encoder_class=MMFMGraphModel,
    processor_class=MMFMGraphProcessor,
    build_processor=build_processor,
    required_columns=("num_nodes", "edge_index"),
    optional_columns=("node_features",),
    row_adapter=graph_items,
    unit="nodes",
    count_units=count_nodes,
    default_objective="graphmae",
    fields_from_data=node_feature_width,
)
