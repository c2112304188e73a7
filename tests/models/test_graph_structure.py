"""The graph encoder's structural pieces against reference implementations (torch_geometric, networkx)."""

import networkx as nx
import pytest
import torch

from mmfm.models import MMFMGINConv, MMFMGraphConfig
from mmfm.models.modeling_mmfm_graph import dense_adjacency, random_walk_encoding, shortest_path_buckets

torch_geometric = pytest.importorskip("torch_geometric")
from torch_geometric.nn import GINConv


def _pyg_gin_from(conv: MMFMGINConv) -> GINConv:
    """torch_geometric's GINConv holding the same MLP weights and epsilon as `conv`."""
    mlp = conv.mlp
    reference_mlp = torch.nn.Sequential(
        torch.nn.Linear(*mlp.fc1.weight.shape[::-1]),
        torch.nn.GELU(),
        torch.nn.Linear(*mlp.fc2.weight.shape[::-1]),
    )
    reference = GINConv(reference_mlp, eps=0.0, train_eps=True)
    # GINConv re-initialises its MLP on construction, so the weights are copied afterwards.
    reference.nn[0].load_state_dict(mlp.fc1.state_dict())
    reference.nn[2].load_state_dict(mlp.fc2.state_dict())
    with torch.no_grad():
        reference.eps.fill_(torch.as_tensor(conv.eps).item())
    return reference


@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_gin_conv_matches_torch_geometric(eps):
    torch.manual_seed(0)
    config = MMFMGraphConfig(
        hidden_size=8, num_attention_heads=2, intermediate_size=16, gin_eps=eps, gin_train_eps=True
    )
    conv = MMFMGINConv(config)
    reference = _pyg_gin_from(conv)

    # Two graphs of different sizes, padded into one batch; one directed edge listed twice.
    graphs = [nx.petersen_graph(), nx.path_graph(4)]
    sizes = [g.number_of_nodes() for g in graphs]
    x = [torch.randn(n, 8) for n in sizes]
    edges = [torch.tensor(list(g.to_directed().edges()), dtype=torch.long).t() for g in graphs]
    edges[1] = torch.cat([edges[1], torch.tensor([[0], [1]])], dim=1)

    padded_x = torch.zeros(2, max(sizes), 8)
    padded_edges = torch.full((2, 2, max(e.shape[1] for e in edges)), -1)
    for i in range(2):
        padded_x[i, : sizes[i]] = x[i]
        padded_edges[i, :, : edges[i].shape[1]] = edges[i]
    ours = conv(padded_x, dense_adjacency(padded_edges, max(sizes)))

    for i in range(2):
        expected = reference(x[i], edges[i])
        torch.testing.assert_close(ours[i, : sizes[i]], expected, rtol=1e-5, atol=1e-6)


def test_shortest_path_buckets_match_networkx():
    graph = nx.disjoint_union(nx.cycle_graph(7), nx.path_graph(3))
    edges = torch.tensor(list(graph.to_directed().edges()), dtype=torch.long).t().unsqueeze(0)
    adjacency = dense_adjacency(edges, graph.number_of_nodes())
    neighbours = ((adjacency + adjacency.transpose(1, 2)) > 0).float()
    max_distance = 3
    buckets = shortest_path_buckets(neighbours, max_distance)[0]
    lengths = dict(nx.all_pairs_shortest_path_length(graph))
    for i in graph.nodes:
        for j in graph.nodes:
            expected = min(lengths[i].get(j, max_distance), max_distance)
            assert buckets[i, j].item() == expected, (i, j)


def test_random_walk_encoding_matches_matrix_powers():
    graph = nx.les_miserables_graph()
    graph = nx.convert_node_labels_to_integers(graph)
    adjacency = torch.tensor(nx.to_numpy_array(graph, weight=None), dtype=torch.float64)
    transition = adjacency / adjacency.sum(1, keepdim=True)
    expected = torch.stack([torch.linalg.matrix_power(transition, k).diagonal() for k in range(1, 6)], dim=-1)
    got = random_walk_encoding(adjacency.unsqueeze(0), 5)[0]
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_dense_adjacency_counts_duplicate_edges_and_ignores_padding():
    edges = torch.tensor([[[0, 0, 1, -1], [1, 1, 2, -1]]])
    adjacency = dense_adjacency(edges, 3)[0]
    assert adjacency[1, 0] == 2  # two edges 0 -> 1
    assert adjacency[2, 1] == 1
    assert adjacency.sum() == 3
