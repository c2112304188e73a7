"""MMFMGraphProcessor: output contract, dict/networkx/PyG equivalence, padding, save/load and validation."""

import json

import numpy as np
import pytest
import torch

from mmfm.processing.graph_processing_mmfm import MMFMGraphProcessor

nx = pytest.importorskip("networkx")


def as_dict(graph, features=None):
    """The demo corpus row format of a networkx graph with integer labels 0..N-1."""
    edges = np.asarray(list(graph.edges), dtype=np.int64).reshape(-1, 2).T
    row = {"num_nodes": graph.number_of_nodes(), "edge_index": edges.tolist()}
    if features is not None:
        row["node_features"] = features.tolist()
    return row


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.fixture(scope="module")
def graphs():
    atlas = [nx.graph_atlas(i) for i in (3, 20, 150)]  # 2 nodes/0 edges, 5 nodes, 7 nodes
    return [nx.karate_club_graph(), *atlas]


def test_output_contract(graphs):
    out = MMFMGraphProcessor()(graphs, return_tensors="pt")
    sizes = [g.number_of_nodes() for g in graphs]
    edges = [2 * g.number_of_edges() for g in graphs]  # undirected: both directions
    assert out["node_features"].shape == (4, 34, 1) and out["node_features"].dtype == torch.float32
    assert out["attention_mask"].dtype == torch.int64 and out["attention_mask"].sum(1).tolist() == sizes
    assert out["edge_index"].shape == (4, 2, max(edges)) and out["edge_index"].dtype == torch.int64
    assert ((out["edge_index"] != -1).all(1).sum(1)).tolist() == edges
    assert torch.all(out["node_features"][1, sizes[1] :] == 0) and torch.all(
        out["node_features"][1, : sizes[1]] == 1
    )
    listed = MMFMGraphProcessor()(graphs)  # return_tensors=None: per-graph arrays, padded like the tensors
    assert isinstance(listed["edge_index"], list) and listed["edge_index"][1].shape == (2, max(edges))


def test_no_edges_gives_one_padding_column():
    out = MMFMGraphProcessor()(
        [{"num_nodes": 3, "edge_index": [[], []]}, nx.empty_graph(2)], return_tensors="np"
    )
    assert out["edge_index"].shape == (2, 2, 1) and (out["edge_index"] == -1).all()


def test_batch_equals_single_graphs(graphs):
    processor = MMFMGraphProcessor()
    batch = processor(graphs, return_tensors="pt")
    for i, graph in enumerate(graphs):
        alone = processor(graph, return_tensors="pt")
        n, e = alone["node_features"].shape[1], int((alone["edge_index"][0, 0] != -1).sum())
        torch.testing.assert_close(batch["node_features"][i, :n], alone["node_features"][0])
        torch.testing.assert_close(batch["edge_index"][i, :, :e], alone["edge_index"][0, :, :e])


def test_networkx_dict_and_pyg_inputs_agree():
    pyg_utils = pytest.importorskip("torch_geometric.utils")
    data_cls = pytest.importorskip("torch_geometric.data").Data
    rng = np.random.default_rng(0)
    karate = nx.karate_club_graph()
    features = rng.normal(size=(34, 4)).astype(np.float32)
    for node in karate.nodes:
        karate.nodes[node]["x"] = features[node].tolist()
    processor = MMFMGraphProcessor(node_feature_size=4)
    from_nx = processor(karate, return_tensors="pt")
    from_dict = processor(as_dict(karate, features), return_tensors="pt")
    pyg = pyg_utils.from_networkx(karate, group_node_attrs=["x"])  # both edge directions, x (34, 4)
    from_pyg = processor(pyg, return_tensors="pt")
    one_direction = data_cls(
        edge_index=torch.tensor(as_dict(karate)["edge_index"]), x=torch.from_numpy(features), num_nodes=34
    )
    assert_same(from_nx, from_dict)
    assert_same(from_nx, from_pyg)
    assert_same(from_nx, processor(one_direction, return_tensors="pt"))
    np.testing.assert_array_equal(from_nx["node_features"][0].numpy(), features)


def test_networkx_relabelling_and_pairs():
    graph = nx.Graph([("c", "a"), ("a", "b")])  # sorted labels a, b, c -> 0, 1, 2
    expected = {"num_nodes": 3, "edge_index": [(2, 0), (0, 1)]}  # a list of (src, dst) tuples
    assert_same(
        MMFMGraphProcessor()(graph, return_tensors="pt"), MMFMGraphProcessor()(expected, return_tensors="pt")
    )
    shuffled = nx.Graph([(2, 1), (0, 1)])  # integer labels inserted out of order keep their ids
    out = MMFMGraphProcessor()(shuffled, return_tensors="np")["edge_index"][0]
    assert sorted(map(tuple, out.T.tolist())) == [(0, 1), (1, 0), (1, 2), (2, 1)]


def test_pyg_batch_and_datasets_columns(graphs):
    batch_cls = pytest.importorskip("torch_geometric.data").Batch
    pyg_utils = pytest.importorskip("torch_geometric.utils")
    processor = MMFMGraphProcessor()
    expected = processor(graphs[1:], return_tensors="pt")
    pyg_batch = batch_cls.from_data_list([pyg_utils.from_networkx(g) for g in graphs[1:]])
    assert_same(processor(pyg_batch, return_tensors="pt"), expected)
    rows = [as_dict(g) for g in graphs[1:]]
    columns = {key: [row[key] for row in rows] for key in rows[0]}  # what datasets.map(batched=True) passes
    assert_same(processor(columns, return_tensors="pt"), expected)


def test_edge_options():
    row = {"num_nodes": 3, "edge_index": [[0, 0, 1], [1, 1, 1]]}  # duplicate 0->1 and a self-loop on 1
    directed = MMFMGraphProcessor(make_undirected=False)(row, return_tensors="np")["edge_index"][0]
    np.testing.assert_array_equal(directed, [[0, 0, 1], [1, 1, 1]])  # order and multiplicity kept
    undirected = MMFMGraphProcessor()(row, return_tensors="np")["edge_index"][0]
    np.testing.assert_array_equal(undirected, [[0, 1, 1], [1, 0, 1]])
    looped = MMFMGraphProcessor(add_self_loops=True)(row, return_tensors="np")["edge_index"][0]
    np.testing.assert_array_equal(looped, [[0, 0, 1, 1, 2], [0, 1, 0, 1, 2]])


def test_save_load_round_trip(tmp_path, graphs):
    processor = MMFMGraphProcessor(
        node_feature_size=1, max_nodes=40, make_undirected=False, add_self_loops=True, node_feature_key="feat"
    )
    json.dumps(processor.to_dict())
    processor.save_pretrained(tmp_path)
    loaded = MMFMGraphProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    for key in ("node_feature_size", "max_nodes", "make_undirected", "add_self_loops", "node_feature_key"):
        assert getattr(loaded, key) == getattr(processor, key)
    assert_same(loaded(graphs, return_tensors="pt"), processor(graphs, return_tensors="pt"))


def _partial_attributes():
    graph = nx.path_graph(3)
    graph.nodes[0]["x"] = [1.0]
    return graph


@pytest.mark.parametrize(
    "graph, options, error, match",
    [
        ({"num_nodes": 0, "edge_index": [[], []]}, {}, ValueError, r"graphs\['num_nodes'\].*empty graph"),
        (nx.empty_graph(0), {}, ValueError, r"graphs.*number_of_nodes\(\).*empty graph"),
        (
            {"num_nodes": 3, "edge_index": [[0, 1, 2], [1, 2, 0], [0, 0, 0]]},
            {},
            ValueError,
            r"graphs\['edge_index'\].*\(2, E\).*\(3, 3\)",
        ),
        (
            {"num_nodes": 3, "edge_index": np.array([[0, 1], [1, 2], [2, 0]])},
            {},
            ValueError,
            r"edge_index.*\(2, E\).*\(3, 2\).*transpose",
        ),
        (
            {"num_nodes": 3, "edge_index": [[0, -1], [1, 2]]},
            {},
            ValueError,
            r"edge_index.*negative node id -1",
        ),
        (
            [{"num_nodes": 3, "edge_index": [[0, 1]] * 2}, {"num_nodes": 5, "edge_index": [[0, 5], [1, 2]]}],
            {},
            ValueError,
            r"graphs\[1\]\['edge_index'\].*node id 5.*num_nodes=5",
        ),
        ({"num_nodes": 3, "edge_index": [[0.5], [1]]}, {}, ValueError, r"edge_index.*integer node ids"),
        (
            {"num_nodes": 3, "edge_index": [[0], [1]], "node_features": [[1.0], [2.0]]},
            {},
            ValueError,
            r"node_features.*\(3, 1\).*\(2, 1\)",
        ),
        (
            {"num_nodes": 2, "edge_index": [[0], [1]], "node_features": [[1.0, 2.0], [3.0, 4.0]]},
            {},
            ValueError,
            r"node_features.*node_feature_size.*\(2, 1\).*\(2, 2\)",
        ),
        (
            {"num_nodes": 2, "edge_index": [[0], [1]], "node_features": [[1.0], [np.nan]]},
            {},
            ValueError,
            r"node_features.*finite.*NaN",
        ),
        (nx.path_graph(12), {"max_nodes": 10}, ValueError, r"graphs.*12.*max_nodes`=10.*never truncated"),
        (
            _partial_attributes(),
            {},
            ValueError,
            r"graphs.*attribute 'x' on 1 of 3 nodes.*missing on nodes \[1, 2\]",
        ),
        ({"edge_index": [[0], [1]]}, {}, ValueError, r"graphs.*neither 'num_nodes' nor 'node_features'"),
        ({"num_nodes": 2}, {}, ValueError, r"graphs.*no 'edge_index'"),
        ("C1=CC=CC=C1", {}, TypeError, r"graphs.*dict.*networkx.*PyG"),
        ([], {}, ValueError, r"graphs.*empty list"),
    ],
)
def test_invalid_inputs(graph, options, error, match):
    with pytest.raises(error, match=match):
        MMFMGraphProcessor(**options)(graph)


def test_invalid_options():
    with pytest.raises(ValueError, match=r"node_feature_size.*>= 1"):
        MMFMGraphProcessor(node_feature_size=0)
    with pytest.raises(TypeError, match=r"make_undirected.*bool"):
        MMFMGraphProcessor(make_undirected="yes")
    with pytest.raises(ValueError, match=r"return_tensors"):
        MMFMGraphProcessor()(nx.path_graph(2), return_tensors="jax")
