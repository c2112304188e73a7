"""Configuration of the mmfm graph encoder (model type `mmfm_graph`)."""

from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMEncoderConfig, require_choice, require_positive_int


class MMFMGraphConfig(MMFMEncoderConfig):
    r"""Configuration of [`MMFMGraphModel`], a graph transformer with nodes as tokens.

    Structure enters three ways: degree embeddings and the spatial attention bias of Graphormer
    (Ying et al., 2021), random-walk structural encodings (RWSE, Dwivedi et al., 2022), and GIN
    message-passing layers (Xu et al., 2019) run on the node embeddings before attention.

    Args:
        node_feature_size: F, features per node in `node_features` (1 for graphs without features,
            whose nodes the graph processor fills with ones).
        max_degree: in- and out-degrees above this share the last degree embedding.
        max_distance: shortest-path distances of `max_distance` or more, and unreachable pairs, share
            the last spatial-bias bucket.
        random_walk_steps: K, the number of random-walk return probabilities per node (0 disables).
        use_spatial_bias: add a learned per-head bias indexed by shortest-path distance to the
            attention scores (needs `eager` or `sdpa` attention; flash attention takes no bias).
        num_message_passing_layers: GIN layers (sum aggregation, 2-layer MLP) applied residually
            before the transformer blocks (0 disables).
        gin_eps: initial epsilon of GIN's `(1 + eps) * x_i` self term.
        gin_train_eps: learn epsilon.
        pooling: graph embedding from the `"graph_token"` (a virtual node attending to all nodes) or
            the `"mean"` of node tokens.
        (transformer fields and `pretraining_*`: see `MMFMEncoderConfig`.)
    """

    model_type = "mmfm_graph"
    modality: ClassVar[str] = "graph"
    auto_map_classes: ClassVar[dict[str, str]] = {
        "AutoConfig": "configuration_mmfm_graph.MMFMGraphConfig",
        "AutoModel": "modeling_mmfm_graph.MMFMGraphModel",
        # transformers has no graph classification Auto class; sequence classification is the nearest
        # (pooled embedding -> num_labels, same problem types, labels and output).
        "AutoModelForSequenceClassification": "modeling_mmfm_graph.MMFMGraphForGraphClassification",
    }
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"max_degree": 8, "max_distance": 5, "random_walk_steps": 4}
    }

    node_feature_size: int = 1
    max_degree: int = 32
    max_distance: int = 8
    random_walk_steps: int = 8
    use_spatial_bias: bool = True
    num_message_passing_layers: int = 1
    gin_eps: float = 0.0
    gin_train_eps: bool = False
    pooling: str = "graph_token"

    def check_consistency(self) -> None:
        super().check_consistency()
        require_positive_int(self, "node_feature_size", "max_degree", "max_distance")
        for name in ("random_walk_steps", "num_message_passing_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"MMFMGraphConfig.{name} must be a non-negative integer, got {value!r}.")
        require_choice(self, "pooling", ("graph_token", "mean"))


__all__ = ["MMFMGraphConfig"]
