"""GraphMAE on the graph encoder: batch-level and per-graph masking, random substitution (`replace_rate`),
re-masking, scaled cosine error against a slow loop, learning, bad input."""

import networkx as nx
import pytest
import torch

from mmfm.models import MMFMGraphForGraphMAE, MMFMGraphModel
from mmfm.objectives import scaled_cosine_error
from tests.model_inputs import objective_config, tiny_config

# 6 + 4 + 4 + 3 = 17 real nodes.
GRAPHS = [nx.cycle_graph(6), nx.path_graph(4), nx.star_graph(3), nx.empty_graph(3)]


def _batch(graphs=GRAPHS, features: str = "degree"):
    """Padded batch of small graphs whose node features are (1, degree, degree^2), or distinct random rows."""
    size = max(g.number_of_nodes() for g in graphs)
    num_edges = max(2 * g.number_of_edges() for g in graphs) or 1
    node_features = torch.zeros(len(graphs), size, 3)
    mask = torch.zeros(len(graphs), size, dtype=torch.long)
    edges = torch.full((len(graphs), 2, num_edges), -1)
    gen = torch.Generator().manual_seed(7)
    for i, graph in enumerate(graphs):
        n = graph.number_of_nodes()
        degree = torch.tensor([d for _, d in graph.degree()], dtype=torch.float32)
        if features == "degree":
            node_features[i, :n] = torch.stack([torch.ones(n), degree, degree**2], dim=-1)
        else:
            node_features[i, :n] = torch.randn(n, 3, generator=gen)
        mask[i, :n] = 1
        directed = list(graph.to_directed().edges())
        if directed:
            edges[i, :, : len(directed)] = torch.tensor(directed).t()
    return {"node_features": node_features, "edge_index": edges, "attention_mask": mask}


def _model(**pretraining) -> MMFMGraphForGraphMAE:
    torch.manual_seed(0)
    return MMFMGraphForGraphMAE(objective_config("graphmae", pretraining))


def _slow_sce(reconstruction, features, masked, gamma):
    """Mean over masked nodes of (1 - cos(reconstruction, original features))^gamma, one node at a time."""
    terms = []
    for b, n in masked.nonzero().tolist():
        x, y = reconstruction[b, n], features[b, n]
        terms.append((1 - x @ y / (x.norm() * y.norm()).clamp(min=1e-8)) ** gamma)  # a zero vector: cosine 0
    return torch.stack(terms).mean()


def _encoder_inputs(model, batch, **kwargs):
    """The model's output and what its encoder was called with (its node features and `masked_nodes`)."""
    seen = {}

    def record(module, args, kwargs):
        seen["node_features"] = args[0].detach().clone()
        seen["masked_nodes"] = kwargs["masked_nodes"].clone()

    handle = model.encoder.register_forward_pre_hook(record, with_kwargs=True)
    try:
        out = model(**batch, **kwargs)
    finally:
        handle.remove()
    return out, seen


# ----------------------------------------------------------------------------------------------
# Masking: over the batch (default, as the authors' code) or per graph
# ----------------------------------------------------------------------------------------------


def test_defaults_follow_the_authors_code():
    model = _model()
    assert (model.objective.mask_ratio, model.objective.replace_rate) == (0.5, 0.1)
    assert (model.objective.mask_scope, model.objective.sce_gamma) == ("batch", 2.0)
    assert model.config.pretraining_objective == "graphmae"
    assert model.config.pretraining_config == {"mask_ratio": 0.5, "replace_rate": 0.1, "mask_scope": "batch",
                                               "sce_gamma": 2.0}  # fmt: skip


def test_default_masks_half_of_the_batch_nodes_never_padding():
    model = _model().eval()
    batch = _batch()
    real = batch["attention_mask"].bool()
    # Padding slots get the smallest noise and graph 0 the next smallest: padding must still not be masked, and
    # the 8 = int(0.5 * 17) masked nodes are chosen over the batch, so graph 0 loses all its 6 nodes.
    noise = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)) + 1.0
    noise[0] = torch.linspace(0.1, 0.2, 6)
    noise[~real] = -1.0
    out = model(**batch, noise=noise)
    masked = out.masked_nodes
    assert int(masked.sum()) == int(0.5 * 17) == 8
    assert not (masked & ~real).any()
    assert bool(masked[0].all())  # a whole graph masked: only batch-level masking does this
    order = sorted((float(noise[b, n]), b, n) for b, n in real.nonzero().tolist())
    expected = torch.zeros_like(masked)
    for _, b, n in order[:8]:
        expected[b, n] = True
    assert torch.equal(masked, expected)  # the real nodes of smallest noise
    assert not out.substituted_nodes.any()  # int(0.1 * 8) = 0
    for seed in range(5):  # any noise: the same batch-wide count, never padding
        other = model(**batch, noise=torch.rand(4, 6, generator=torch.Generator().manual_seed(seed)))
        assert int(other.masked_nodes.sum()) == 8 and not (other.masked_nodes & ~real).any()


def test_default_loss_is_the_scaled_cosine_error_of_masked_nodes():
    model = _model().eval()
    batch = _batch()
    out = model(**batch, noise=torch.rand(4, 6, generator=torch.Generator().manual_seed(3)))
    expected = _slow_sce(out.reconstruction, batch["node_features"], out.masked_nodes, 2.0)
    torch.testing.assert_close(out.loss, expected)


def test_graph_scope_masks_half_of_each_graph():
    model = _model(mask_scope="graph", replace_rate=0.0, sce_gamma=3.0).eval()
    batch = _batch()
    real = batch["attention_mask"].bool()
    out = model(**batch, noise=torch.rand(4, 6))
    masked = out.masked_nodes
    assert not (masked & ~real).any()
    assert masked.sum(dim=1).tolist() == [3, 2, 2, 2]  # half of 6, 4, 4 and 3 (rounded) nodes
    assert masked.sum(dim=1).tolist() == [round(0.5 * n) for n in (6, 4, 4, 3)]
    expected = _slow_sce(out.reconstruction, batch["node_features"], masked, 3.0)
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(
        out.loss, scaled_cosine_error(out.reconstruction[masked], batch["node_features"][masked], 3.0)
    )
    # Per graph, at least one node masked and one visible, whatever the noise and ratio.
    graphs = [nx.path_graph(n) for n in (2, 5, 7, 10)]
    wide = _batch(graphs)
    for ratio in (0.3, 0.5, 0.9):
        scoped = _model(mask_scope="graph", mask_ratio=ratio).eval()
        for seed in range(3):
            noise = torch.rand(4, 10, generator=torch.Generator().manual_seed(seed))
            counts = scoped(**wide, noise=noise).masked_nodes.sum(dim=1).tolist()
            assert counts == [min(max(round(ratio * n), 1), n - 1) for n in (2, 5, 7, 10)], (ratio, counts)


# ----------------------------------------------------------------------------------------------
# Random substitution (`replace_rate`)
# ----------------------------------------------------------------------------------------------


def test_substituted_nodes_carry_real_features_without_the_mask_token_and_are_scored():
    model = _model(replace_rate=0.5).eval()
    batch = _batch(features="random")  # every node has its own features
    real = batch["attention_mask"].bool()
    gen = torch.Generator().manual_seed(1)
    noise, substitution_noise = torch.rand(4, 6, generator=gen), torch.rand(4, 6, generator=gen)
    torch.manual_seed(0)  # the substitutes' sources come from the global generator
    out, seen = _encoder_inputs(model, batch, noise=noise, substitution_noise=substitution_noise)
    masked, substituted = out.masked_nodes, out.substituted_nodes
    assert int(masked.sum()) == 8 and int(substituted.sum()) == int(0.5 * 8) == 4
    assert not (substituted & ~masked).any()
    # The substituted ones are the masked nodes of smallest substitution noise.
    ranked = sorted((float(substitution_noise[b, n]), b, n) for b, n in masked.nonzero().tolist())
    assert sorted((b, n) for _, b, n in ranked[:4]) == sorted(map(tuple, substituted.nonzero().tolist()))
    # The encoder gets the mask token on the other masked nodes only ...
    assert torch.equal(seen["masked_nodes"], masked & ~substituted)
    # ... the original features everywhere but on the substituted nodes ...
    original = batch["node_features"]
    assert torch.equal(seen["node_features"][~substituted], original[~substituted])
    # ... and on each substituted node the original features of some real node of the batch.
    pool = original[real]  # (17, 3) distinct rows
    moved = 0
    for b, n in substituted.nonzero().tolist():
        matches = (seen["node_features"][b, n] == pool).all(dim=-1)
        assert int(matches.sum()) == 1, (b, n)
        moved += not torch.equal(seen["node_features"][b, n], original[b, n])
    assert moved > 0
    # All masked nodes are scored against their original features, the substituted ones included.
    torch.testing.assert_close(out.loss, _slow_sce(out.reconstruction, original, masked, 2.0))
    without = _slow_sce(out.reconstruction, original, masked & ~substituted, 2.0)
    assert abs(out.loss.item() - without.item()) > 1e-6
    # Reproducible from the noises and the global seed.
    torch.manual_seed(0)
    again = model(**batch, noise=noise, substitution_noise=substitution_noise)
    torch.testing.assert_close(again.loss, out.loss, rtol=0, atol=0)


def test_default_replace_rate_substitutes_a_tenth_of_the_masked_nodes_rounded_down():
    # 12 + 9 + 15 + 5 = 41 real nodes.
    graphs = [nx.cycle_graph(12), nx.path_graph(9), nx.star_graph(14), nx.path_graph(5)]
    batch = _batch(graphs)
    model = _model().eval()
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        out = model(
            **batch,
            noise=torch.rand(4, 15, generator=gen),
            substitution_noise=torch.rand(4, 15, generator=gen),
        )
        assert int(out.masked_nodes.sum()) == int(0.5 * 41) == 20
        assert int(out.substituted_nodes.sum()) == int(0.1 * 20) == 2
        assert not (out.substituted_nodes & ~out.masked_nodes).any()
    for rate, expected in [(0.3, 6), (0.49, 9), (0.0, 0)]:
        out = _model(replace_rate=rate).eval()(**batch, noise=torch.rand(4, 15))
        assert int(out.substituted_nodes.sum()) == expected == int(rate * 20), rate


# ----------------------------------------------------------------------------------------------
# Re-masking and leaks
# ----------------------------------------------------------------------------------------------


def test_masked_features_do_not_leak_and_codes_are_re_masked():
    model = _model(replace_rate=0.0).eval()
    batch = _batch()
    noise = torch.rand(4, 6, generator=torch.Generator().manual_seed(2)) + 1.0
    noise[3, :2] = 0.0  # two isolated nodes of the edgeless graph among the masked ones
    out = model(**batch, noise=noise)
    changed = dict(batch, node_features=batch["node_features"] + 50.0 * out.masked_nodes.unsqueeze(-1))
    torch.testing.assert_close(model(**changed, noise=noise).reconstruction, out.reconstruction)
    # The isolated nodes of the edgeless graph that are masked see only their zeroed code.
    isolated = out.masked_nodes[3, :3].nonzero().flatten()
    assert {0, 1} <= set(isolated.tolist())
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


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_graphmae_bad_input():
    model = _model()
    single = {"node_features": torch.ones(1, 1, 3), "edge_index": None, "attention_mask": torch.ones(1, 1)}
    with pytest.raises(ValueError, match="too short to mask"):
        model(**single)
    # A one-node graph is fine in a batch (masking is over the batch), not when each graph is masked alone.
    pair = _batch([nx.path_graph(4), nx.empty_graph(1)])
    model(**pair)
    with pytest.raises(ValueError, match=r"Samples \[1\] have fewer than 2 real items: too short to mask"):
        _model(mask_scope="graph")(**pair)
    with pytest.raises(ValueError, match="substitution_noise` must have shape"):
        _model(replace_rate=0.5)(**_batch(), substitution_noise=torch.rand(4, 5))
    encoder = MMFMGraphModel(tiny_config("graph"))
    with pytest.raises(ValueError, match="use_mask_token"):
        encoder(torch.ones(1, 2, 3), masked_nodes=torch.tensor([[True, False]]))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"mask_ratio": 1.0}, r"GraphMAEConfig\.mask_ratio must be strictly between 0 and 1"),
        ({"replace_rate": 1.0}, r"GraphMAEConfig\.replace_rate must be in \[0, 1\)"),
        ({"mask_scope": "node"}, r"GraphMAEConfig\.mask_scope must be one of \['batch', 'graph'\]"),
        ({"sce_gamma": 0.5}, r"GraphMAEConfig\.sce_gamma must be >= 1"),
        ({"replace_ratio": 0.1}, r"Unknown GraphMAEConfig field\(s\) \['replace_ratio'\]"),
    ],
)
def test_pretraining_config_errors(fields, match):
    with pytest.raises(ValueError, match=match):
        _model(**fields)
