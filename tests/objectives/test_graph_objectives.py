"""GraphMAE on the graph encoder: masking, re-masking, scaled cosine error, learning, bad input."""

import networkx as nx
import pytest
import torch

from mmfm.models.modeling_mmfm_graph import MMFMGraphForPreTraining, MMFMGraphModel
from mmfm.objectives import scaled_cosine_error
from tests.model_inputs import tiny_config

GRAPHS = [nx.cycle_graph(6), nx.path_graph(4), nx.star_graph(3), nx.empty_graph(3)]


def _batch():
    """Padded batch of small graphs whose node features are (1, degree, degree^2)."""
    size = max(g.number_of_nodes() for g in GRAPHS)
    features = torch.zeros(len(GRAPHS), size, 3)
    mask = torch.zeros(len(GRAPHS), size, dtype=torch.long)
    edges = torch.full((len(GRAPHS), 2, 12), -1)
    for i, graph in enumerate(GRAPHS):
        n = graph.number_of_nodes()
        degree = torch.tensor([d for _, d in graph.degree()], dtype=torch.float32)
        features[i, :n] = torch.stack([torch.ones(n), degree, degree**2], dim=-1)
        mask[i, :n] = 1
        directed = list(graph.to_directed().edges())
        if directed:
            edges[i, :, : len(directed)] = torch.tensor(directed).t()
    return {"node_features": features, "edge_index": edges, "attention_mask": mask}


def _model(**overrides) -> MMFMGraphForPreTraining:
    torch.manual_seed(0)
    return MMFMGraphForPreTraining(tiny_config("graph", **overrides))


def test_loss_is_the_scaled_cosine_error_of_masked_nodes():
    model = _model(sce_gamma=3.0).eval()
    batch = _batch()
    out = model(**batch, noise=torch.rand(4, 6))
    masked = out.masked_nodes
    assert not (masked & ~batch["attention_mask"].bool()).any()
    assert masked.sum(dim=1).tolist() == [3, 2, 2, 2]  # half of 6, 4, 4 and 3 (rounded) nodes
    terms = []
    for b, n in masked.nonzero().tolist():
        x, y = out.reconstruction[b, n], batch["node_features"][b, n]
        terms.append((1 - x @ y / (x.norm() * y.norm()).clamp(min=1e-8)) ** 3)  # a zero vector: cosine 0
    torch.testing.assert_close(out.loss, torch.stack(terms).mean())
    torch.testing.assert_close(out.loss, scaled_cosine_error(out.reconstruction[masked], batch["node_features"][masked], 3.0))


def test_masked_features_do_not_leak_and_codes_are_re_masked():
    model = _model().eval()
    batch, noise = _batch(), torch.rand(4, 6)
    out = model(**batch, noise=noise)
    changed = dict(batch, node_features=batch["node_features"] + 50.0 * out.masked_nodes.unsqueeze(-1))
    torch.testing.assert_close(model(**changed, noise=noise).reconstruction, out.reconstruction)
    # The isolated nodes of the edgeless graph that are masked see only their zeroed code.
    isolated = out.masked_nodes[3, :3].nonzero().flatten()
    zero_code = model.decoder(torch.zeros(1, 1, 32), torch.zeros(1, 1, 1))[0, 0]
    for node in isolated.tolist():
        torch.testing.assert_close(out.reconstruction[3, node], zero_code)


def test_loss_falls_over_a_few_steps():
    model = _model().train()
    batch, noise = _batch(), torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = model(**batch, noise=noise).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_graphmae_bad_input():
    model = _model()
    single = {"node_features": torch.ones(1, 1, 3), "edge_index": None, "attention_mask": torch.ones(1, 1)}
    with pytest.raises(ValueError, match="too short to mask"):
        model(**single)
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_config("graph", mask_ratio=1.0)
    encoder = MMFMGraphModel(tiny_config("graph"))
    with pytest.raises(ValueError, match="use_mask_token"):
        encoder(torch.ones(1, 2, 3), masked_nodes=torch.tensor([[True, False]]))
