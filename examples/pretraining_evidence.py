"""Evidence that pretraining works: pretrain a small encoder with one objective on the demo corpus (CPU,
a few minutes), then compare frozen-feature probes of the pretrained encoder with the same encoder at
random initialisation (same seed, same architecture) on labelled demo data.

    python examples/pretraining_evidence.py --objective mae            # one objective
    python examples/pretraining_evidence.py --objective all            # every objective, one after another

Each run writes `outputs/evidence/<objective>.json` (losses, wall time, both evaluations) and prints a
Markdown row for the README's table. Needs the demo corpus (`python -m mmfm.data.demo`).
"""

import argparse
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

import mmfm
from mmfm.data.collators import DataCollatorForCausalLM, DataCollatorForMaskedLM, DataCollatorForTokenSubstitution
from mmfm.data.demo import load_demo_dataset, load_demo_tokenizer
from mmfm.data.demo.graph import ATOM_FEATURE_SIZE
from mmfm.evaluation import evaluate_encoder, evaluate_forecasts
from mmfm.evaluation.features import process_rows
from mmfm.models.modeling_mmfm_audio import MMFMAudioForPreTraining
from mmfm.models.modeling_mmfm_graph import MMFMGraphForPreTraining
from mmfm.models.modeling_mmfm_text import MMFMTextForCausalLM, MMFMTextForMaskedLM, MMFMTextForPreTraining
from mmfm.models.modeling_mmfm_timeseries import MMFMTimeSeriesForPreTraining
from mmfm.models.modeling_mmfm_vision import MMFMVisionForPreTraining
from mmfm.processing import MMFMProcessor

SMALL = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 256}
UNIVARIATE_UCR = ("GunPoint", "ItalyPowerDemand", "ArrowHead", "OSULeaf")
TEXT_LENGTH = 128  # tokens per pretraining and evaluation text
SEASONS = {"yearly": 1, "quarterly": 4, "monthly": 12, "weekly": 52}
FORECAST_HORIZON = 16  # one patch


@dataclass
class Evaluation:
    """A labelled demo subset and the probes to run on it."""

    subset: str
    label_column: str = "label"
    tasks: tuple[str, ...] = ("knn", "linear_probe")
    rows: Callable[[Dataset], Dataset] | None = None


@dataclass
class Objective:
    modality: str
    model_class: type
    config: Callable[[], object]
    pretrain_subsets: tuple[str, ...]
    evaluations: tuple[Evaluation, ...]
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    processor_kwargs: dict = field(default_factory=dict)
    rows: Callable[[Dataset], Dataset] | None = None
    collator: Callable | None = None  # text: (tokenizer, seed) -> collator that corrupts a batch


def _univariate_ucr(dataset: Dataset) -> Dataset:
    return dataset.filter(lambda name: name in UNIVARIATE_UCR, input_columns="dataset")


def _vision_config(objective: str, norm_pix_loss: bool = True, pooling: str = "cls"):
    # 8x8 digits need patches no larger than 8 pixels; 32x32 inputs with 4x4 patches give 64 tokens.
    return mmfm.MMFMVisionConfig(
        image_size=32, patch_size=4, pretraining_objective=objective, norm_pix_loss=norm_pix_loss, pooling=pooling,
        decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
        decoder_intermediate_size=128, **SMALL,
    )  # fmt: skip


def _text_config(**fields):
    return mmfm.MMFMTextConfig(vocab_size=8000, max_position_embeddings=TEXT_LENGTH, **SMALL, **fields)


def _text_objective(model_class, collator, pooling="mean", is_causal=False) -> Objective:
    # Mean pooling for MLM and substitution: neither objective trains the [CLS] output (BERT trained it
    # with next-sentence prediction); a first MLM run read out [CLS] and lost to random initialisation.
    texts = {"truncation": True, "max_length": TEXT_LENGTH}
    return Objective(
        "text", model_class, lambda: _text_config(pooling=pooling, is_causal=is_causal), ("corpus",),
        (Evaluation("sentiment"), Evaluation("newsgroups")), steps=200, processor_kwargs=texts,
        collator=collator,
    )  # fmt: skip


def _timeseries_config(objective: str):
    return mmfm.MMFMTimeSeriesConfig(
        context_length=256, patch_length=16, patch_stride=16, pretraining_objective=objective,
        is_causal=objective == "autoregressive", **SMALL,
    )  # fmt: skip


OBJECTIVES: dict[str, Objective] = {
    "mae": Objective(
        "vision", MMFMVisionForPreTraining, lambda: _vision_config("mae"), ("digits", "shapes"),
        (Evaluation("digits"),),
    ),
    # The same with mean-pooled patch tokens: MAE's loss reaches the class token only through the decoder.
    "mae_mean": Objective(
        "vision", MMFMVisionForPreTraining, lambda: _vision_config("mae", pooling="mean"), ("digits", "shapes"),
        (Evaluation("digits"),),
    ),
    # MAE with raw pixel targets: a 4x4 patch of an upscaled 8x8 digit is a flat or smooth ramp, and
    # per-patch normalisation (norm_pix_loss) removes its brightness, the part that tells stroke from paper.
    "mae_pixels": Objective(
        "vision", MMFMVisionForPreTraining, lambda: _vision_config("mae", norm_pix_loss=False),
        ("digits", "shapes"), (Evaluation("digits"),),
    ),
    "droppos": Objective(
        "vision", MMFMVisionForPreTraining, lambda: _vision_config("droppos"), ("digits", "shapes"),
        (Evaluation("digits"),),
    ),
    "ssast": Objective(
        "audio", MMFMAudioForPreTraining,
        lambda: mmfm.MMFMAudioConfig(num_mel_bins=64, patch_frequency_size=16, patch_time_size=4,
                                     max_time_patches=128, **SMALL),
        ("spoken_digits", "spoken_words", "speech_captions"),
        (Evaluation("spoken_digits"), Evaluation("spoken_words")),
        processor_kwargs={"truncation": True},
    ),
    "graphmae": Objective(
        "graph", MMFMGraphForPreTraining,
        # GraphMAE reads a graph out by pooling its node embeddings; the graph token is no node and gets no
        # training signal from node-feature reconstruction (the first run, with graph-token pooling, lost
        # to random initialisation on every probe).
        lambda: mmfm.MMFMGraphConfig(node_feature_size=ATOM_FEATURE_SIZE, pooling="mean", **SMALL),
        ("molecules",),
        (Evaluation("molecules"), Evaluation("molecules", "tpsa", ("ridge",))),
    ),
    "ts_masked": Objective(
        "timeseries", MMFMTimeSeriesForPreTraining, lambda: _timeseries_config("masked"), ("ucr",),
        (Evaluation("ucr", rows=_univariate_ucr),), processor_kwargs={"truncation": True}, rows=_univariate_ucr,
    ),
    "ts_autoregressive": Objective(
        "timeseries", MMFMTimeSeriesForPreTraining, lambda: _timeseries_config("autoregressive"), ("ucr",),
        (Evaluation("ucr", rows=_univariate_ucr),), processor_kwargs={"truncation": True}, rows=_univariate_ucr,
    ),
    "mlm": _text_objective(MMFMTextForMaskedLM, lambda tok, seed: DataCollatorForMaskedLM(tok, seed=seed)),
    "clm": _text_objective(MMFMTextForCausalLM, lambda tok, seed: DataCollatorForCausalLM(tok), "last", True),
    "rts": _text_objective(
        MMFMTextForPreTraining, lambda tok, seed: DataCollatorForTokenSubstitution(tok, seed=seed)
    ),
}  # fmt: skip


def pretraining_rows(objective: Objective) -> Dataset:
    """The unlabelled pretraining rows: the train splits of the objective's subsets, input columns only."""
    parts = []
    for subset in objective.pretrain_subsets:
        rows = load_demo_dataset(objective.modality, subset)["train"]
        if objective.rows is not None:
            rows = objective.rows(rows)
        keep = {
            "text": ["text"], "vision": ["image"], "audio": ["audio", "sampling_rate"], "timeseries": ["past_values"]
        }.get(objective.modality, ["num_nodes", "edge_index", "node_features"])  # fmt: skip
        parts.append(rows.select_columns([c for c in keep if c in rows.column_names]))
    return concatenate_datasets(parts)


def pretrain(model, processor, rows: Dataset, objective: Objective, seed: int) -> tuple[list[float], float]:
    """A plain AdamW loop with warmup and cosine decay; random batches drawn with a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=objective.learning_rate, weight_decay=0.05)
    schedule = get_cosine_schedule_with_warmup(optimizer, objective.steps // 10, objective.steps)
    collator = objective.collator(processor["text"], seed) if objective.collator else None
    model.train()
    losses, start = [], time.perf_counter()
    for _ in tqdm(range(objective.steps), desc="pretraining"):
        picked = torch.randint(len(rows), (objective.batch_size,), generator=generator).tolist()
        if collator is not None:  # text: tokenize, then the objective's collator masks or corrupts
            tokenized = processor["text"](rows.select(picked)["text"][:], **objective.processor_kwargs)
            inputs = collator([{"input_ids": ids} for ids in tokenized["input_ids"]])
        else:
            batch = process_rows(processor, rows.select(picked), objective.modality, 0, objective.batch_size,
                                 "text", objective.processor_kwargs)  # fmt: skip
            inputs = {k: v for k, v in batch.items() if k not in ("loc", "scale")}
        device = next(model.parameters()).device
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, time.perf_counter() - start


def evaluate(encoder, processor, objective: Objective) -> dict:
    results = {}
    for evaluation in objective.evaluations:
        data = load_demo_dataset(objective.modality, evaluation.subset)
        train, test = data["train"], data["test"]
        if evaluation.rows is not None:
            train, test = evaluation.rows(train), evaluation.rows(test)
        report = evaluate_encoder(
            encoder, processor, objective.modality, train, test, label_column=evaluation.label_column,
            tasks=evaluation.tasks, progress=False, processor_kwargs=objective.processor_kwargs,
            device=next(encoder.parameters()).device,
        )  # fmt: skip
        results[f"{evaluation.subset}/{evaluation.label_column}"] = {t: report[t] for t in evaluation.tasks}
    return results


def forecasting(model, processor) -> dict:
    """Forecast the last FORECAST_HORIZON steps of every demo forecasting series from what precedes them,
    against a seasonal-naive forecast; returns per-series errors and the median model/naive MAE ratio (a
    series the naive forecast predicts exactly, ratio inf, is listed but left out of the median)."""
    rows = load_demo_dataset("timeseries", "forecasting")["train"]
    per_series, ratios = {}, []
    for row in rows:
        series = np.asarray(row["past_values"], dtype=np.float32)  # (L, C), NaN = missing
        history, future = series[:-FORECAST_HORIZON], series[-FORECAST_HORIZON:]
        season = SEASONS.get(row["frequency"], 1)
        if len(history) < 2 * max(season, model.config.patch_length):
            continue
        inputs = processor(timeseries=[history], timeseries_kwargs={"truncation": True})["timeseries"]
        device = next(model.parameters()).device
        predicted = model.forecast(
            inputs["past_values"].to(device), inputs["past_observed_mask"].to(device), FORECAST_HORIZON
        )
        report = evaluate_forecasts(
            predicted.cpu().numpy(), future[None], history[None], season=season, observed_mask=~np.isnan(future[None])
        )
        per_series[row["dataset"]] = report
        if np.isfinite(report["ratio"]["mae"]):
            ratios.append(report["ratio"]["mae"])
    return {"median_mae_ratio_vs_seasonal_naive": float(np.median(ratios)), "series": per_series}


def run(name: str, seed: int, output: Path, steps: int | None = None, device: str = "cpu") -> dict:
    objective = OBJECTIVES[name]
    if steps is not None:
        objective = dataclasses.replace(objective, steps=steps)
    torch.manual_seed(seed)
    model = objective.model_class(objective.config()).to(device)
    tokenizer = load_demo_tokenizer() if objective.modality == "text" else None
    processor = MMFMProcessor.from_model_config(model.config, tokenizer)
    random_init = evaluate(_frozen_copy(model.encoder), processor, objective)
    if getattr(model.config, "pretraining_objective", None) == "autoregressive":
        random_init["forecasting"] = forecasting(_frozen_copy(model), processor)
    losses, seconds = pretrain(model, processor, pretraining_rows(objective), objective, seed)
    pretrained = evaluate(model.encoder.eval(), processor, objective)
    if "forecasting" in random_init:
        pretrained["forecasting"] = forecasting(model.eval(), processor)
    result = {
        "objective": name, "modality": objective.modality, "steps": objective.steps,
        "batch_size": objective.batch_size, "seconds": seconds, "first_losses": losses[:10],
        "last_losses": losses[-10:], "random_init": random_init, "pretrained": pretrained,
        "device": str(device),
        "command": f"python examples/pretraining_evidence.py --objective {name} --seed {seed}",
    }  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _frozen_copy(encoder):
    """The randomly initialised encoder as it is before training (a deep copy, in eval mode)."""
    return copy.deepcopy(encoder).eval()


def markdown_rows(result: dict) -> list[str]:
    """README table rows: objective, steps, wall time, metric pretrained vs random, command."""
    rows = []
    for key, tasks in result["pretrained"].items():
        if key == "forecasting":
            metric = "median_mae_ratio_vs_seasonal_naive"
            ours, base = tasks[metric], result["random_init"][key][metric]
            rows.append(
                f"| {result['objective']} | forecasting median MAE / seasonal-naive MAE (lower is better) | {result['steps']} "
                f"| {result['seconds']:.0f} s | {ours:.3f} | {base:.3f} | `{result['command']}` |"
            )
            continue
        for task, metrics in tasks.items():
            metric = "r2" if task == "ridge" else "accuracy"
            ours, base = metrics[metric], result["random_init"][key][task][metric]
            rows.append(
                f"| {result['objective']} | {key} {task} {metric} | {result['steps']} | {result['seconds']:.0f} s "
                f"| {ours:.3f} | {base:.3f} | `{result['command']}` |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objective", default="all", choices=["all", *OBJECTIVES])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/evidence")
    parser.add_argument("--steps", type=int, default=None, help="override the objective's pretraining steps")
    parser.add_argument("--device", default="cpu", help="where to pretrain and extract features (e.g. cuda)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = list(OBJECTIVES) if args.objective == "all" else [args.objective]
    for name in names:
        result = run(name, args.seed, Path(args.output), args.steps, args.device)
        print("\n".join(markdown_rows(result)), flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
