"""GraphMAE (Hou et al., 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders") on the mmfm graph
encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm_common import MMFMObjectiveConfig, require_open_fraction, require_probability
from .configuration_mmfm_graph import MMFMGraphConfig
from .mmfm_layers import check_tensor
from .mmfm_losses import scaled_cosine_error
from .mmfm_masking import masking_noise, random_masking_over_batch, random_masking_with_padding
from .mmfm_pretraining import MMFMPreTrainingMixin
from .modeling_mmfm_graph import MMFMGraphModel, MMFMGraphPreTrainedModel, batch_adjacency


@dataclass
class GraphMAEConfig(MMFMObjectiveConfig):
    """GraphMAE's hyperparameters (`pretraining_config` of a GraphMAE model).

    Args:
        mask_ratio: fraction of the nodes whose features are masked and reconstructed (the paper's
            `mask_rate`, 0.25-0.75 by dataset; 0.5 here, NCI1 uses 0.25).
        replace_rate: of the masked nodes, the fraction whose features are replaced by those of random nodes
            of the batch instead of the mask token (the paper's `replace_rate`; 0.1 for its molecule sets
            NCI1 and MUTAG, 0 for others). The count is int(replace_rate * masked), as in the authors' code;
            the rest get the mask token. All masked nodes are scored.
        mask_scope: `"batch"` (the authors' code: int(mask_ratio * n) of the n nodes of the whole batch, so
            a graph may get none or all of its nodes masked) or `"graph"` (round(mask_ratio * n_i) of each
            graph's n_i nodes, at least one masked and one visible per graph).
        sce_gamma: exponent of the scaled cosine error (the paper's alpha, 1-3; 2 here, as for NCI1).

    Departure: the decoder is a GIN layer on the encoder's transformer codes, not the paper's GNN stack.
    """

    mask_ratio: float = 0.5
    replace_rate: float = 0.1
    mask_scope: Literal["batch", "graph"] = "batch"
    sce_gamma: float = 2.0

    def check(self) -> None:
        require_open_fraction(self, "mask_ratio")
        require_probability(self, "replace_rate")
        if self.sce_gamma < 1:
            raise ValueError(f"GraphMAEConfig.sce_gamma must be >= 1, got {self.sce_gamma!r}.")


@dataclass
class MMFMGraphMAEOutput(ModelOutput):
    r"""Output of [`MMFMGraphForGraphMAE`].

    Args:
        loss (`torch.FloatTensor` of shape `()`): scaled cosine error on the masked nodes.
        reconstruction (`torch.FloatTensor` of shape `(B, N, F)`): decoded node features.
        masked_nodes (`torch.BoolTensor` of shape `(B, N)`): nodes whose features were masked (scored).
        substituted_nodes (`torch.BoolTensor` of shape `(B, N)`): the masked nodes that got another node's
            features instead of the mask token.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the encoder's, num_layers + 1 tensors of
            `(B, 1 + N, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): the encoder's, per layer (eager attention).
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    masked_nodes: torch.BoolTensor | None = None
    substituted_nodes: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MMFMGraphDecoder(nn.Module):
    """GraphMAE's single-layer GNN decoder, here a GIN layer (Xu et al., 2019) from the hidden size to the
    node feature size: (B, N, D) codes and (B, N, N) edge counts -> (B, N, F)."""

    def __init__(self, config: MMFMGraphConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.hidden_size, config.node_feature_size)

    def forward(self, codes: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(codes + adjacency.to(codes.dtype) @ codes)))


def substitute_features(
    node_features: torch.Tensor,
    node_mask: torch.Tensor,
    masked: torch.Tensor,
    replace_rate: float,
    substitution_noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GraphMAE's random substitution: int(replace_rate * M) of the M masked nodes (those with the smallest
    `substitution_noise`) take the features of distinct random real nodes of the batch.

    Returns the (B, N, F) features and the (B, N) bool mask of substituted nodes.
    """
    count = int(replace_rate * int(masked.sum()))
    substituted = torch.zeros_like(masked)
    if count == 0:
        return node_features, substituted
    if substitution_noise is None:
        substitution_noise = masking_noise(tuple(masked.shape), masked.device)
    elif substitution_noise.shape != masked.shape:
        raise ValueError(
            f"`substitution_noise` must have shape {tuple(masked.shape)}, got {tuple(substitution_noise.shape)}."
        )
    order = substitution_noise.masked_fill(~masked, float("inf")).flatten().argsort()[:count]
    substituted.view(-1)[order] = True
    real = node_mask.flatten().nonzero().flatten()
    sources = real[torch.randperm(real.numel(), device=real.device)[:count]]
    flat = node_features.reshape(-1, node_features.shape[-1]).clone()
    flat[order] = flat[sources]
    return flat.view_as(node_features), substituted


class MMFMGraphForGraphMAE(MMFMPreTrainingMixin, MMFMGraphPreTrainedModel):
    """The graph encoder with GraphMAE's heads: mask `mask_ratio` of the nodes (the mask token in the input
    feature space, or for `replace_rate` of them another node's features), encode, map the codes to the
    decoder space, re-mask them (zero the masked nodes' codes, so the decoder must reconstruct them from
    their neighbours), decode with one GIN layer, and score the masked nodes' reconstructed features
    with the scaled cosine error (exponent `sce_gamma`)."""

    objective_name = "graphmae"
    objective_config_class = GraphMAEConfig

    def __init__(self, config: MMFMGraphConfig):
        super().__init__(config)
        self.objective = self.resolve_objective(config)
        self.encoder = MMFMGraphModel(config, use_mask_token=True)
        self.encoder_to_decoder = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.decoder = MMFMGraphDecoder(config)
        self.post_init()

    def _mask(self, node_mask: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.objective.mask_scope == "batch":
            return random_masking_over_batch(node_mask, self.objective.mask_ratio, noise=noise)
        return random_masking_with_padding(node_mask, self.objective.mask_ratio, noise=noise)

    @can_return_tuple
    def forward(
        self,
        node_features: torch.FloatTensor,
        edge_index: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        noise: torch.FloatTensor | None = None,
        substitution_noise: torch.FloatTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MMFMGraphMAEOutput:
        r"""
        Args:
            node_features, edge_index, attention_mask: as for [`MMFMGraphModel`].
            noise (`torch.FloatTensor` of shape `(B, N)`, *optional*): uniform noise; the real nodes with the
                smallest values are masked. Drawn from the global generator if None.
            substitution_noise (`torch.FloatTensor` of shape `(B, N)`, *optional*): the same for choosing the
                masked nodes whose features are substituted (their sources come from the global generator).
        """
        node_mask = self.encoder._check_inputs(node_features, edge_index, attention_mask)
        for name, value in (("noise", noise), ("substitution_noise", substitution_noise)):
            if value is not None:
                check_tensor(name, value, "(batch_size, num_nodes)", 2, "float", self.encoder.input_device())
                if value.shape != node_mask.shape:
                    raise ValueError(
                        f"`{name}` must have shape {tuple(node_mask.shape)} (one value per node slot), got "
                        f"{tuple(value.shape)}."
                    )
        masked = self._mask(node_mask, noise)
        corrupted, substituted = substitute_features(
            node_features, node_mask, masked, self.objective.replace_rate, substitution_noise
        )
        encoded = self.encoder(
            corrupted, edge_index, attention_mask, masked_nodes=masked & ~substituted,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )  # fmt: skip
        codes = self.encoder_to_decoder(encoded.last_hidden_state[:, 1:])  # (B, N, D), graph token dropped
        codes = codes.masked_fill(masked.unsqueeze(-1), 0.0)  # re-mask
        batch, nodes, _ = node_features.shape
        reconstruction = self.decoder(codes, batch_adjacency(edge_index, batch, nodes, codes.device))
        loss = scaled_cosine_error(reconstruction[masked], node_features[masked], self.objective.sce_gamma)
        return MMFMGraphMAEOutput(
            loss=loss, reconstruction=reconstruction, masked_nodes=masked,
            substituted_nodes=substituted, hidden_states=encoded.hidden_states, attentions=encoded.attentions,
        )  # fmt: skip


__all__ = [
    "GraphMAEConfig",
    "MMFMGraphDecoder",
    "MMFMGraphForGraphMAE",
    "MMFMGraphMAEOutput",
    "substitute_features",
]
