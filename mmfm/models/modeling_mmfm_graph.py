"""mmfm graph encoder: nodes as tokens with degree and random-walk encodings, GIN message passing, and
attention biased by shortest-path distance (Graphormer). Pure torch on padded dense batches, so a
checkpoint loads without torch_geometric.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_graph import MMFMGraphConfig
from .mmfm_heads import MMFMHeadMixin, classifier_dropout, sequence_classification_loss
from .mmfm_layers import (
    MMFMMLP,
    MMFMEncoderPreTrainedModel,
    MMFMTransformer,
    check_finite,
    check_tensor,
    check_token_flags,
    masked_mean,
    resolve_padding_mask,
)


@dataclass
class MMFMGraphModelOutput(ModelOutput):
    r"""Output of [`MMFMGraphModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + N, D)`): the graph token, then one token
            per node slot (padding slots included, see `attention_mask`).
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): graph embedding (see `config.pooling`).
        attention_mask (`torch.LongTensor` of shape `(B, 1 + N)`): 1 for the graph token and real nodes.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): num_layers + 1 tensors of `(B, 1 + N, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, 1 + N, 1 + N)` (eager).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ----------------------------------------------------------------------------------------------
# Structure of padded graph batches
# ----------------------------------------------------------------------------------------------


def dense_adjacency(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Edge counts A (B, N, N) with A[b, i, j] = number of edges j -> i, from (B, 2, E) `edge_index`
    whose padding entries are -1. Counting duplicates matches a sum-aggregating message-passing layer."""
    batch, _, num_edges = edge_index.shape
    adjacency = torch.zeros(batch, num_nodes, num_nodes, device=edge_index.device)
    source, target = edge_index[:, 0], edge_index[:, 1]
    valid = (source >= 0) & (target >= 0)
    graph = torch.arange(batch, device=edge_index.device).unsqueeze(1).expand(batch, num_edges)
    adjacency.index_put_(
        (graph[valid], target[valid], source[valid]),
        torch.ones_like(source[valid], dtype=adjacency.dtype),
        accumulate=True,
    )
    return adjacency


def batch_adjacency(edge_index: torch.Tensor | None, batch: int, num_nodes: int, device) -> torch.Tensor:
    """`dense_adjacency` of (B, 2, E) `edge_index`, or no edges at all (B, N, N zeros) when it is None."""
    if edge_index is None:
        return torch.zeros(batch, num_nodes, num_nodes, device=device)
    return dense_adjacency(edge_index.long(), num_nodes)


def random_walk_encoding(neighbours: torch.Tensor, steps: int) -> torch.Tensor:
    """Return probabilities of k-step random walks, k = 1..steps (RWSE): (B, N, N) 0/1 symmetric
    `neighbours` -> (B, N, steps). Isolated nodes stay in place (probability 1)."""
    degree = neighbours.sum(-1, keepdim=True)
    transition = torch.where(degree > 0, neighbours / degree.clamp(min=1), torch.zeros_like(neighbours))
    isolated = (degree.squeeze(-1) == 0).float()
    transition = transition + torch.diag_embed(isolated)
    walk = transition
    returns = []
    for _ in range(steps):
        returns.append(torch.diagonal(walk, dim1=-2, dim2=-1))
        walk = walk @ transition
    return torch.stack(returns, dim=-1)


def shortest_path_buckets(neighbours: torch.Tensor, max_distance: int) -> torch.Tensor:
    """Hop distances (B, N, N) by breadth-first expansion with boolean matrix products; distances of
    `max_distance` or more and unreachable pairs are all `max_distance`."""
    batch, num_nodes, _ = neighbours.shape
    reached = torch.eye(num_nodes, dtype=torch.bool, device=neighbours.device).expand(batch, -1, -1)
    distance = torch.full(
        (batch, num_nodes, num_nodes), max_distance, dtype=torch.long, device=neighbours.device
    )
    distance = distance.masked_fill(reached, 0)
    for hops in range(1, max_distance):
        expanded = reached | ((reached.float() @ neighbours) > 0)
        distance = distance.masked_fill(expanded & ~reached, hops)
        reached = expanded
    return distance


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------


class MMFMGINConv(nn.Module):
    """Graph isomorphism network convolution (Xu et al., 2019), as torch_geometric's `GINConv`:
    x_i' = MLP((1 + eps) * x_i + sum_{j -> i} x_j), on dense padded batches."""

    def __init__(self, config: MMFMGraphConfig):
        super().__init__()
        self.mlp = MMFMMLP(config)
        if config.gin_train_eps:
            self.eps = nn.Parameter(torch.tensor([float(config.gin_eps)]))
        else:
            self.eps = float(config.gin_eps)

    def forward(self, node_states: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """(B, N, D) states and (B, N, N) edge counts (A[b, i, j] = edges j -> i) -> (B, N, D)."""
        aggregated = adjacency.to(node_states.dtype) @ node_states
        return self.mlp((1 + self.eps) * node_states + aggregated)


class MMFMMessagePassingLayer(nn.Module):
    """Pre-norm residual GIN block: x + GIN(LN(x)), with padding nodes kept at zero."""

    def __init__(self, config: MMFMGraphConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.conv = MMFMGINConv(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, node_states: torch.Tensor, adjacency: torch.Tensor, node_mask: torch.Tensor
    ) -> torch.Tensor:
        update = self.conv(self.norm(node_states) * node_mask.unsqueeze(-1), adjacency)
        return node_states + self.dropout(update) * node_mask.unsqueeze(-1)


class MMFMGraphEmbeddings(nn.Module):
    """Node features + degree + random-walk encodings, GIN layers, then a prepended graph token."""

    def __init__(self, config: MMFMGraphConfig, use_mask_token: bool = False):
        super().__init__()
        self.config = config
        # GraphMAE's [MASK] token lives in the input feature space; only its pretraining model has it.
        self.mask_token = (
            nn.Parameter(torch.zeros(1, 1, config.node_feature_size)) if use_mask_token else None
        )
        self.node_projection = nn.Linear(config.node_feature_size, config.hidden_size)
        self.in_degree_embedding = nn.Embedding(config.max_degree + 1, config.hidden_size)
        self.out_degree_embedding = nn.Embedding(config.max_degree + 1, config.hidden_size)
        self.random_walk_projection = (
            nn.Linear(config.random_walk_steps, config.hidden_size) if config.random_walk_steps else None
        )
        self.message_passing = nn.ModuleList(
            [MMFMMessagePassingLayer(config) for _ in range(config.num_message_passing_layers)]
        )
        self.graph_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        node_features: torch.Tensor,
        adjacency: torch.Tensor,
        node_mask: torch.Tensor,
        masked_nodes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, F) features, (B, N, N) edge counts, (B, N) bool mask -> (B, 1 + N, D) tokens; the
        features of (B, N) `masked_nodes` are replaced by the mask token."""
        if masked_nodes is not None:
            mask_token = self.mask_token.to(node_features.dtype)
            node_features = torch.where(masked_nodes.unsqueeze(-1), mask_token, node_features)
        max_degree = self.config.max_degree
        in_degree = adjacency.sum(-1).long().clamp(max=max_degree)
        out_degree = adjacency.sum(-2).long().clamp(max=max_degree)
        states = self.node_projection(node_features.to(self.node_projection.weight.dtype))
        states = states + self.in_degree_embedding(in_degree) + self.out_degree_embedding(out_degree)
        if self.random_walk_projection is not None:
            neighbours = ((adjacency + adjacency.transpose(1, 2)) > 0).float()
            with torch.no_grad():
                walks = random_walk_encoding(neighbours, self.config.random_walk_steps)
            states = states + self.random_walk_projection(walks.to(states.dtype))
        states = states * node_mask.unsqueeze(-1)
        for layer in self.message_passing:
            states = layer(states, adjacency, node_mask)
        graph_token = self.graph_token.expand(states.shape[0], -1, -1).to(states.dtype)
        return self.dropout(torch.cat([graph_token, states], dim=1))


class MMFMGraphSpatialBias(nn.Module):
    """Graphormer's spatial encoding: a learned per-head bias for each shortest-path distance, plus
    one learned bias between the graph token and every node, with padding keys masked out."""

    def __init__(self, config: MMFMGraphConfig):
        super().__init__()
        self.config = config
        self.distance_bias = nn.Embedding(config.max_distance + 1, config.num_attention_heads)
        self.graph_token_bias = nn.Parameter(torch.zeros(1, config.num_attention_heads, 1, 1))

    def forward(self, adjacency: torch.Tensor, token_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, N, N) edge counts and (B, 1 + N) bool mask -> additive bias (B, H, 1 + N, 1 + N)."""
        neighbours = ((adjacency + adjacency.transpose(1, 2)) > 0).float()
        with torch.no_grad():
            distance = shortest_path_buckets(neighbours, self.config.max_distance)
        node_bias = self.distance_bias(distance).permute(0, 3, 1, 2)  # (B, H, N, N)
        batch, heads, nodes, _ = node_bias.shape
        token_bias = self.graph_token_bias.to(node_bias.dtype)
        bias = token_bias.expand(batch, heads, nodes + 1, nodes + 1).clone()
        bias[:, :, 1:, 1:] = node_bias
        blocked = torch.finfo(dtype).min
        return bias.to(dtype).masked_fill(~token_mask[:, None, None, :], blocked)


class MMFMGraphPreTrainedModel(MMFMEncoderPreTrainedModel):
    config: MMFMGraphConfig
    config_class = MMFMGraphConfig
    base_model_prefix = "encoder"
    main_input_name = "node_features"
    input_modalities = ("graph",)
    _no_split_modules = ["MMFMLayer", "MMFMGraphEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMGraphEmbeddings):
            init.trunc_normal_(module.graph_token, std=self.config.initializer_range)
            if module.mask_token is not None:
                init.zeros_(module.mask_token)
        elif isinstance(module, MMFMGraphSpatialBias):
            init.zeros_(module.graph_token_bias)
        elif isinstance(module, MMFMGINConv) and isinstance(module.eps, nn.Parameter):
            init.constant_(module.eps, float(self.config.gin_eps))


class MMFMGraphModel(MMFMGraphPreTrainedModel):
    """Graph encoder: padded node features (B, N, F) and edges (B, 2, E) -> node tokens and (B, D)."""

    # GraphMAE's mask token is built only for its model; a bare encoder loads without it.
    _keys_to_ignore_on_load_unexpected = [r"embeddings\.mask_token$"]

    def __init__(self, config: MMFMGraphConfig, use_mask_token: bool = False):
        super().__init__(config)
        self.embeddings = MMFMGraphEmbeddings(config, use_mask_token=use_mask_token)
        self.attention_bias = MMFMGraphSpatialBias(config) if config.use_spatial_bias else None
        self.transformer = MMFMTransformer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.node_projection

    def _check_inputs(
        self,
        node_features: torch.Tensor,
        edge_index: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        device = self.input_device()
        check_tensor(
            "node_features", node_features, "(batch_size, num_nodes, node_feature_size)", 3, "float", device,
            hint="Convert integer node attributes with `.float()` (or use the graph processor).",
        )  # fmt: skip
        batch, nodes, features = node_features.shape
        if features != self.config.node_feature_size:
            raise ValueError(
                f"`node_features` has {features} features per node, the model expects node_feature_size="
                f"{self.config.node_feature_size}."
            )
        if nodes == 0:
            raise ValueError("`node_features` has 0 nodes: an empty graph cannot be encoded.")
        validate = self.config.validate_inputs
        if validate:
            check_finite("node_features", node_features)
        node_mask = resolve_padding_mask(
            "attention_mask", attention_mask, (batch, nodes), node_features.device, validate
        )
        if edge_index is not None:
            check_tensor("edge_index", edge_index, "(batch_size, 2, num_edges)", 3, "integer", device)
            if edge_index.shape[0] != batch or edge_index.shape[1] != 2:
                raise ValueError(
                    f"`edge_index` must have shape ({batch}, 2, num_edges), got {tuple(edge_index.shape)}."
                )
            if validate:
                self._check_edge_range(edge_index, node_mask)
        return node_mask

    @staticmethod
    def _check_edge_range(edge_index: torch.Tensor, node_mask: torch.Tensor) -> None:
        padding = edge_index < 0
        if bool((padding[:, 0] != padding[:, 1]).any()) or bool((edge_index < -1).any()):
            raise ValueError(
                "`edge_index` pads missing edges with -1 in both rows; found a half-padded or < -1 entry."
            )
        nodes = node_mask.shape[1]
        beyond = (edge_index >= nodes) & ~padding
        if bool(beyond.any()):
            raise ValueError(
                f"`edge_index` refers to node {int(edge_index.max())} but the batch has {nodes} node slots "
                "(indices are local to each graph, 0-based)."
            )
        batch_index = torch.arange(edge_index.shape[0], device=edge_index.device)[:, None, None].expand_as(
            edge_index
        )
        points_at_padding = ~node_mask[batch_index, edge_index.clamp(min=0)] & ~padding
        if bool(points_at_padding.any()):
            graph, _, edge = points_at_padding.nonzero()[0].tolist()
            raise ValueError(
                f"`edge_index` of graph {graph} uses node {int(edge_index[graph, :, edge].max())}, beyond its "
                f"{int(node_mask[graph].sum())} nodes (see `attention_mask`)."
            )

    @can_return_tuple
    def forward(
        self,
        node_features: torch.FloatTensor,
        edge_index: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        masked_nodes: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMGraphModelOutput:
        r"""
        Args:
            node_features (`torch.FloatTensor` of shape `(B, N, F)`): node features, zero for padding slots.
            edge_index (`torch.LongTensor` of shape `(B, 2, E)`, *optional*): directed edges source -> target
                with node ids local to each graph; list both directions for undirected graphs; pad with -1.
            attention_mask (`torch.Tensor` of shape `(B, N)`, *optional*): 1 for real nodes, 0 for padding.
            masked_nodes (`torch.BoolTensor` of shape `(B, N)`, *optional*): nodes whose features are replaced
                by the learned mask token (GraphMAE; needs a model built with `use_mask_token=True`).
        """
        node_mask = self._check_inputs(node_features, edge_index, attention_mask)
        if masked_nodes is not None:
            check_token_flags(
                "masked_nodes", masked_nodes, node_mask.shape, self.embeddings.mask_token, "use_mask_token",
                "MMFMGraphForGraphMAE",
            )  # fmt: skip
        batch, nodes, _ = node_features.shape
        adjacency = batch_adjacency(edge_index, batch, nodes, node_features.device)
        embeddings = self.embeddings(node_features, adjacency, node_mask, masked_nodes)
        token_mask = torch.cat([node_mask.new_ones(batch, 1), node_mask], dim=1)
        if self.attention_bias is not None:
            if self.config._attn_implementation not in ("eager", "sdpa"):
                raise ValueError(
                    f"attn_implementation={self.config._attn_implementation!r} cannot add the graph's "
                    "shortest-path attention bias; use 'sdpa' or 'eager', or set use_spatial_bias=False."
                )
            mask = self.attention_bias(adjacency, token_mask, embeddings.dtype)
        else:
            mask = create_bidirectional_mask(self.config, embeddings, token_mask.long())
        hidden, all_hidden, attentions = self.transformer(
            embeddings,
            mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        if self.config.pooling == "graph_token":
            pooled = hidden[:, 0]
        else:
            pooled = masked_mean(hidden[:, 1:], node_mask)
        return MMFMGraphModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            attention_mask=token_mask.long(),
            hidden_states=all_hidden,
            attentions=attentions,
        )


class MMFMGraphForGraphClassification(MMFMHeadMixin, MMFMGraphPreTrainedModel):
    """Graph encoder + dropout + linear layer on the graph embedding (`config.pooling`: graph token or mean of
    nodes): (B, num_labels). Graph classification (single- or multi-label) or graph regression (molecular
    properties) by `config.problem_type`, with the labels and losses of `BertForSequenceClassification`;
    several regression targets need `problem_type="regression"` (float labels with num_labels > 1 are read as
    multi-label otherwise, as transformers does)."""

    auto_classes = ("AutoModelForSequenceClassification",)
    _auto_class = "AutoModelForSequenceClassification"
    pipeline_tasks = ("graph-classification",)

    def __init__(self, config: MMFMGraphConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = MMFMGraphModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    @can_return_tuple
    def forward(
        self,
        node_features: torch.FloatTensor,
        edge_index: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        Args:
            node_features (`(B, N, F)`), edge_index (`(B, 2, E)`, *optional*), attention_mask (`(B, N)`,
                *optional*): see [`MMFMGraphModel`].
            labels (`torch.Tensor` of shape `(B,)` or `(B, num_labels)`, *optional*): class ids (single-label,
                -100 ignored), 0/1 floats (multi-label) or float targets (regression).
            num_items_in_batch (`int` or `torch.Tensor`, *optional*): labelled graphs of the accumulated step.

        Returns:
            `SequenceClassifierOutput`: `loss` (with `labels`), `logits` (B, num_labels), `hidden_states` and
            `attentions` of the encoder when asked.
        """
        outputs = self.encoder(
            node_features, edge_index=edge_index, attention_mask=attention_mask,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(logits, labels, self.config, num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "MMFMGINConv",
    "MMFMGraphForGraphClassification",
    "MMFMGraphModel",
    "MMFMGraphModelOutput",
    "MMFMGraphPreTrainedModel",
    "batch_adjacency",
    "dense_adjacency",
]
