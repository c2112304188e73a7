"""Tiny configurations and seeded inputs for every registered model, shared by the model suites.

Each builder returns a padded batch plus the same samples unpadded, one by one, so suites can check
that padding never changes a sample's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mmfm.models import CONFIG_CLASSES, ENCODER_CLASSES, MODALITIES, MMFMConfig, MMFMModel

ALL_MODELS = (*MODALITIES, "composite")


@dataclass
class Case:
    """A model under test, a padded batch, and each sample alone (unpadded)."""

    name: str
    model: torch.nn.Module
    batch: dict
    singles: list[dict] = field(default_factory=list)


def tiny_config(name: str, **overrides):
    if name == "composite":
        sub = {f"{m}_config": tiny_config(m) for m in MODALITIES}
        return MMFMConfig(projection_dim=16, **sub, **overrides)
    fields = {"node_feature_size": 3} if name == "graph" else {}
    fields.update(overrides)
    return CONFIG_CLASSES[name].from_preset("tiny", **fields)


def build_model(name: str, config=None, **overrides) -> torch.nn.Module:
    config = config if config is not None else tiny_config(name, **overrides)
    model_class = MMFMModel if name == "composite" else ENCODER_CLASSES[name]
    return model_class(config)


def _text(config, gen) -> tuple[dict, list[dict]]:
    lengths = [9, 5, 7]
    ids = torch.randint(5, config.vocab_size, (len(lengths), max(lengths)), generator=gen)
    mask = torch.zeros_like(ids)
    singles = []
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        singles.append({"input_ids": ids[i : i + 1, :n].clone()})
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    return {"input_ids": ids, "attention_mask": mask}, singles


def _vision(config, gen) -> tuple[dict, list[dict]]:
    pixels = torch.randn(
        3, config.num_channels, config.image_size, config.image_size + config.patch_size, generator=gen
    )
    return {"pixel_values": pixels}, [{"pixel_values": pixels[i : i + 1]} for i in range(3)]


def _audio(config, gen) -> tuple[dict, list[dict]]:
    lengths = [23, 9, 16]  # frames; not all multiples of patch_time_size
    features = torch.randn(len(lengths), max(lengths), config.num_mel_bins, generator=gen)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    singles = []
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        features[i, n:] = 7.0  # garbage in padding must not matter
        singles.append({"input_features": features[i : i + 1, :n].clone()})
    return {"input_features": features, "attention_mask": mask}, singles


def _graph(config, gen) -> tuple[dict, list[dict]]:
    edge_lists = [
        [(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)],  # a 4-cycle with a tail
        [(0, 1), (1, 2)],  # a path
        [],  # one isolated node
    ]
    sizes = [5, 3, 1]
    max_nodes, max_edges = max(sizes), max(2 * len(e) for e in edge_lists)
    features = torch.zeros(len(sizes), max_nodes, config.node_feature_size)
    mask = torch.zeros(len(sizes), max_nodes, dtype=torch.long)
    edge_index = torch.full((len(sizes), 2, max_edges), -1, dtype=torch.long)
    singles = []
    for i, (n, edges) in enumerate(zip(sizes, edge_lists)):
        x = torch.randn(n, config.node_feature_size, generator=gen)
        features[i, :n], mask[i, :n] = x, 1
        both = [(a, b) for a, b in edges] + [(b, a) for a, b in edges]
        single_edges = torch.tensor(both, dtype=torch.long).reshape(-1, 2).t()
        edge_index[i, :, : single_edges.shape[1]] = single_edges
        singles.append({"node_features": x.unsqueeze(0), "edge_index": single_edges.unsqueeze(0)})
    return {"node_features": features, "edge_index": edge_index, "attention_mask": mask}, singles


def _timeseries(config, gen) -> tuple[dict, list[dict]]:
    batch, length, channels = 3, config.context_length, 2
    steps = torch.arange(length, dtype=torch.float32)
    values = torch.stack(
        [
            torch.stack([torch.sin(steps / (3 + i + c)) * (c + 1) + i for c in range(channels)], -1)
            for i in range(batch)
        ]
    )
    values = values + 0.1 * torch.randn(values.shape, generator=gen)
    observed = torch.ones_like(values)
    observed[1, : length // 3] = 0  # left padding of a shorter series
    observed[2, 5:9, 1] = 0  # missing values inside a series
    values = values.masked_fill(observed == 0, 0.0)
    singles = [
        {"past_values": values[i : i + 1], "past_observed_mask": observed[i : i + 1]} for i in range(batch)
    ]
    return {"past_values": values, "past_observed_mask": observed}, singles


BUILDERS = {"text": _text, "vision": _vision, "audio": _audio, "graph": _graph, "timeseries": _timeseries}


def make_inputs(name: str, config, seed: int = 0) -> tuple[dict, list[dict]]:
    """Padded batch and unpadded singles for the model `name` (composite: one dict per modality)."""
    gen = torch.Generator().manual_seed(seed)
    if name != "composite":
        return BUILDERS[name](config, gen)
    batch, singles = {}, [{} for _ in range(3)]
    for modality in MODALITIES:
        modality_batch, modality_singles = BUILDERS[modality](config.modality_config(modality), gen)
        batch[modality] = modality_batch
        for single, sample in zip(singles, modality_singles):
            single[modality] = sample
    return batch, singles


def primary_output(name: str, output) -> torch.Tensor:
    """One tensor summarising a model's output for comparisons: pooled embedding(s)."""
    if name == "composite":
        return torch.cat([output.embeddings[m] for m in MODALITIES], dim=-1)
    return output.pooler_output


def real_token_states(
    name: str, batch_output, index: int, single_output
) -> tuple[torch.Tensor, torch.Tensor]:
    """The real (non-padding) token states of sample `index` in the batch and alone."""
    if name == "composite":
        pairs = [
            real_token_states(m, batch_output.encoder_outputs[m], index, single_output.encoder_outputs[m])
            for m in MODALITIES
        ]
        return torch.cat([p[0].flatten() for p in pairs]), torch.cat([p[1].flatten() for p in pairs])
    alone = single_output.last_hidden_state[0]
    if name == "timeseries":
        return batch_output.last_hidden_state[index], alone
    return batch_output.last_hidden_state[index, : alone.shape[0]], alone
