"""Tiny configurations and seeded inputs for every registered model, shared by the model suites.

Each modality builder returns a padded batch plus the same samples unpadded, one by one, so suites can
check that padding never changes a sample's outputs. Each objective adds its randomness (masking noise,
labels) to a modality batch explicitly, so its loss is reproducible (`objective_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mmfm.models import CONFIG_CLASSES, ENCODER_CLASSES, HEAD_CLASSES, MODALITIES, MMFMConfig, MMFMModel
from mmfm.objectives import get_objective, objectives

ALL_MODELS = (*MODALITIES, "composite")
OBJECTIVES = tuple(objectives())
# Every downstream head, by class name: (modality, class).
HEADS = {head.__name__: (modality, head) for modality, heads in HEAD_CLASSES.items() for head in heads}
# Every public model class: the encoders (by modality), the composite, each objective's model (by name), each
# downstream head (by class name).
ALL_MODEL_CLASSES = (*ALL_MODELS, *OBJECTIVES, *HEADS)
# Tiny head settings: 3 classes (2 regression targets), 4 forecast steps.
HEAD_FIELDS = {"num_labels": 3, "prediction_length": 4}


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


def objective_config(name: str, pretraining_config: dict | None = None, **overrides):
    """The tiny encoder config of objective `name`: its requirements (e.g. causal attention), its tiny
    decoder sizes, then `pretraining_config` and encoder `overrides`."""
    objective = get_objective(name)
    pretraining = {**objective.config_class.presets.get("tiny", {}), **(pretraining_config or {})}
    return tiny_config(
        objective.modality, **{**objective.encoder_requirements, **overrides}, pretraining_config=pretraining
    )


def head_config(name: str, **overrides):
    """The tiny encoder config of head `name` with `HEAD_FIELDS` (only the time series forecast)."""
    modality, head = HEADS[name]
    fields = {"num_labels": 2 if head.__name__.endswith("Regression") else HEAD_FIELDS["num_labels"]}
    if modality == "timeseries":
        fields["prediction_length"] = HEAD_FIELDS["prediction_length"]
    return tiny_config(modality, **{**fields, **overrides})


def build_model(name: str, config=None, **overrides) -> torch.nn.Module:
    """The model `name` of `ALL_MODEL_CLASSES` (an encoder, the composite, an objective's model or a head)."""
    if name in HEADS:
        return HEADS[name][1](config if config is not None else head_config(name, **overrides))
    if name in OBJECTIVES:
        return get_objective(name).model_class(
            config if config is not None else objective_config(name, **overrides)
        )
    config = config if config is not None else tiny_config(name, **overrides)
    model_class = MMFMModel if name == "composite" else ENCODER_CLASSES[name]
    return model_class(config)


def model_config(name: str, **overrides):
    """The tiny config of any model of `ALL_MODEL_CLASSES`."""
    if name in HEADS:
        return head_config(name, **overrides)
    return objective_config(name, **overrides) if name in OBJECTIVES else tiny_config(name, **overrides)


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


def _text_labels(batch: dict, gen: torch.Generator) -> torch.Tensor:
    ids, real = batch["input_ids"], batch["attention_mask"].bool()
    chosen = (torch.rand(ids.shape, generator=gen) < 0.3) & real
    chosen[:, 1] = True
    return torch.where(chosen, ids, -100)


def _mlm(batch, config, gen):
    return {**batch, "labels": _text_labels(batch, gen)}


def _clm(batch, config, gen):
    return {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)}


def _rts(batch, config, gen):
    real = batch["attention_mask"].bool()
    replaced = torch.where(real, torch.randint(0, 2, real.shape, generator=gen), -100)
    return {**batch, "labels": _text_labels(batch, gen), "substitution_labels": replaced}


def _mae(batch, config, gen):  # 32x40 images: 4x5 patches
    return {**batch, "noise": torch.rand(3, 20, generator=gen)}


def _droppos(batch, config, gen):  # DropPos classifies among the config's 4x4 grid: 32x32 images
    pixels = batch["pixel_values"][:, :, :, : config.image_size]
    return {
        "pixel_values": pixels,
        "noise": torch.rand(3, 16, generator=gen),
        "position_noise": torch.rand(3, 4, generator=gen),
    }


def _ssast(batch, config, gen):  # clips of 23, 9 and 16 frames: 6 time slots x 4 bands
    return {**batch, "noise": torch.rand(3, 24, generator=gen)}


def _graphmae(batch, config, gen):
    noise = {"noise": torch.rand(3, 5, generator=gen), "substitution_noise": torch.rand(3, 5, generator=gen)}
    return {**batch, **noise}


def _ts_masked(batch, config, gen):
    return {**batch, "noise": torch.rand(3, 2, config.num_patches, generator=gen)}


OBJECTIVE_RANDOMNESS = {
    "mlm": _mlm, "clm": _clm, "rts": _rts, "mae": _mae, "droppos": _droppos, "ssast": _ssast,
    "graphmae": _graphmae, "ts_masked": _ts_masked,
}  # fmt: skip


def objective_inputs(name: str, config, seed: int = 0) -> dict:
    """A fixed batch for objective `name` with every random choice (masking noise, labels) given explicitly;
    an objective without an entry in `OBJECTIVE_RANDOMNESS` gets its modality's batch (its masks then come
    from the global generator, which the suites seed before every call)."""
    batch, _ = make_inputs(get_objective(name).modality, config, seed)
    add_randomness = OBJECTIVE_RANDOMNESS.get(name, lambda batch, config, gen: dict(batch))
    return add_randomness(batch, config, torch.Generator().manual_seed(seed + 1))


def head_labels(name: str, batch: dict, config, gen: torch.Generator) -> dict:
    """Seeded labels for head `name` on its modality's `batch`: class ids (B,), per-token ids (B, L) with -100
    on padding, float targets (B, num_labels) for regression, or future values (B, H, C) for forecasting."""
    head = HEADS[name][1]
    size = next(iter(batch.values())).shape[0]
    if head.__name__.endswith("TokenClassification"):
        ids = torch.randint(0, config.num_labels, batch["input_ids"].shape, generator=gen)
        return {"labels": ids.masked_fill(batch["attention_mask"] == 0, -100)}
    if head.__name__.endswith("Regression"):
        return {"labels": torch.randn(size, config.num_labels, generator=gen)}
    if head.__name__.endswith("Prediction"):
        shape = (size, config.prediction_length, batch["past_values"].shape[-1])
        return {"future_values": torch.randn(shape, generator=gen)}
    return {"labels": torch.randint(0, config.num_labels, (size,), generator=gen)}


def model_inputs(name: str, config, seed: int = 0) -> dict:
    """The batch of any model of `ALL_MODEL_CLASSES` (objective models get their explicit randomness, heads
    their labels)."""
    if name in HEADS:
        batch = make_inputs(HEADS[name][0], config, seed)[0]
        return {**batch, **head_labels(name, batch, config, torch.Generator().manual_seed(seed + 1))}
    return objective_inputs(name, config, seed) if name in OBJECTIVES else make_inputs(name, config, seed)[0]


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
