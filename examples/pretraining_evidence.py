"""Evidence that pretraining works: pretrain a small encoder with one objective on the demo corpus (CPU,
a few minutes), then compare frozen-feature probes of the pretrained encoder with the same encoder at
random initialisation (same seed, same architecture) on labelled demo data.

    python examples/pretraining_evidence.py --objective mae            # one objective
    python examples/pretraining_evidence.py --objective all            # every objective, one after another

Each run names a registered objective (`mmfm.objectives`): its model class, the encoder fields it prefers
and requires, its data corruption (text), its processor options and its schedule (DropPos's sigma decay)
all come from the registry, as in `recipes/pretrain.py`; a run here adds the encoder size, the objective's
hyperparameters (`pretraining_config`, e.g. MAE's decoder) and the demo data. Some runs are variants of one
objective (`mae_mean`, `mae_pixels`).

Each run writes `outputs/evidence/<run>.json` (losses, wall time, both evaluations) and prints a
Markdown row for the README's table. Needs the demo corpus (`python -m mmfm.data.demo`).
"""

import argparse
import copy
import dataclasses
import inspect
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

from mmfm.data.demo import load_demo_dataset, load_demo_tokenizer
from mmfm.data.demo.graph import ATOM_FEATURE_SIZE
from mmfm.evaluation import evaluate_encoder, evaluate_forecasts
from mmfm.evaluation.features import process_rows
from mmfm.objectives import Objective, get_objective
from mmfm.processing import MMFMProcessor
from mmfm.training.tasks import forward_input_names

SMALL = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 256}
# The light MAE / DropPos decoder of these runs (an objective hyperparameter, not an encoder field).
DECODER = {"decoder_hidden_size": 64, "decoder_num_hidden_layers": 2, "decoder_num_attention_heads": 4,
           "decoder_intermediate_size": 128}  # fmt: skip
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
class Run:
    """One evidence run: a registered objective, the encoder it trains, its data and its training loop.

    Attributes:
        objective: the registry name (`mmfm.objectives.objectives()`).
        encoder: encoder configuration fields, over the objective's `encoder_defaults` (its
            `encoder_requirements`, e.g. causal attention for clm, are applied too).
        pretraining_config: the objective's hyperparameters (its dataclass fills in the rest).
        processor_kwargs: processor options of pretraining and evaluation; None: the objective's.
    """

    objective: str
    encoder: dict
    pretrain_subsets: tuple[str, ...]
    evaluations: tuple[Evaluation, ...]
    pretraining_config: dict = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    processor_kwargs: dict | None = None
    rows: Callable[[Dataset], Dataset] | None = None

    @property
    def registered(self) -> Objective:
        return get_objective(self.objective)

    @property
    def modality(self) -> str:
        return self.registered.modality

    def options(self) -> dict:
        """Processor options of pretraining and evaluation."""
        return dict(
            self.registered.processor_kwargs if self.processor_kwargs is None else self.processor_kwargs
        )

    def config(self):
        """The encoder configuration, carrying the objective's hyperparameters in `pretraining_config`."""
        objective = self.registered
        fields = {**objective.encoder_defaults, **objective.encoder_requirements, **self.encoder}
        return objective.spec.config_class(**fields, pretraining_config=dict(self.pretraining_config))

    def build_model(self):
        """The objective's model; it checks the encoder against the objective and fills in the defaults."""
        return self.registered.model_class(self.config())


def _univariate_ucr(dataset: Dataset) -> Dataset:
    return dataset.filter(lambda name: name in UNIVARIATE_UCR, input_columns="dataset")


def _vision_run(objective: str, pooling: str = "cls", **pretraining_config) -> Run:
    # 8x8 digits need patches no larger than 8 pixels; 32x32 inputs with 4x4 patches give 64 tokens.
    # MAE and DropPos bring their fixed 2-D sine-cosine positions (`encoder_defaults`).
    return Run(
        objective, {"image_size": 32, "patch_size": 4, "pooling": pooling, **SMALL}, ("digits", "shapes"),
        (Evaluation("digits"),), pretraining_config={**DECODER, **pretraining_config},
    )  # fmt: skip


def _text_run(objective: str, pooling: str = "mean") -> Run:
    # Mean pooling for MLM and substitution: neither objective trains the [CLS] output (BERT trained it
    # with next-sentence prediction); a first MLM run read out [CLS] and lost to random initialisation.
    # Causal LM reads out the last token (the objective's encoder default) and needs causal attention.
    encoder = {"vocab_size": 8000, "max_position_embeddings": TEXT_LENGTH, **SMALL}
    if pooling is not None:
        encoder["pooling"] = pooling
    return Run(
        objective, encoder, ("corpus",), (Evaluation("sentiment"), Evaluation("newsgroups")), steps=200,
        processor_kwargs={"truncation": True, "max_length": TEXT_LENGTH},
    )  # fmt: skip


def _timeseries_run(objective: str) -> Run:
    return Run(
        objective, {"context_length": 256, "patch_length": 16, "patch_stride": 16, **SMALL}, ("ucr",),
        (Evaluation("ucr", rows=_univariate_ucr),), rows=_univariate_ucr,
    )  # fmt: skip


RUNS: dict[str, Run] = {
    "mae": _vision_run("mae"),
    # The same with mean-pooled patch tokens: MAE's loss reaches the class token only through the decoder.
    "mae_mean": _vision_run("mae", pooling="mean"),
    # MAE with raw pixel targets: a 4x4 patch of an upscaled 8x8 digit is a flat or smooth ramp, and
    # per-patch normalisation (norm_pix_loss) removes its brightness, the part that tells stroke from paper.
    "mae_pixels": _vision_run("mae", norm_pix_loss=False),
    "droppos": _vision_run("droppos"),
    "ssast": Run(
        "ssast",
        {"num_mel_bins": 64, "patch_frequency_size": 16, "patch_time_size": 4, "max_time_patches": 128, **SMALL},
        ("spoken_digits", "spoken_words", "speech_captions"),
        (Evaluation("spoken_digits"), Evaluation("spoken_words")),
    ),
    "graphmae": Run(
        "graphmae",
        # GraphMAE reads a graph out by pooling its node embeddings; the graph token is no node and gets no
        # training signal from node-feature reconstruction (the first run, with graph-token pooling, lost
        # to random initialisation on every probe).
        {"node_feature_size": ATOM_FEATURE_SIZE, "pooling": "mean", **SMALL},
        ("molecules",),
        (Evaluation("molecules"), Evaluation("molecules", "tpsa", ("ridge",))),
    ),
    "ts_masked": _timeseries_run("ts_masked"),
    "ts_autoregressive": _timeseries_run("ts_autoregressive"),
    "mlm": _text_run("mlm"),
    "clm": _text_run("clm", pooling=None),
    "rts": _text_run("rts"),
}  # fmt: skip


def pretraining_rows(run: Run) -> Dataset:
    """The unlabelled pretraining rows: the train splits of the run's subsets, input columns only (the
    modality's required and optional columns)."""
    required, optional = run.registered.spec.columns("text")
    parts = []
    for subset in run.pretrain_subsets:
        rows = load_demo_dataset(run.modality, subset)["train"]
        if run.rows is not None:
            rows = run.rows(rows)
        parts.append(rows.select_columns([c for c in (*required, *optional) if c in rows.column_names]))
    return concatenate_datasets(parts)


def pretrain(model, processor, rows: Dataset, run: Run, seed: int) -> tuple[list[float], float]:
    """A plain AdamW loop with warmup and cosine decay; random batches drawn with a seeded generator. Each
    step passes the objective's step arguments (DropPos's decaying sigma, MLM's sparse prediction)."""
    objective = run.registered
    generator = torch.Generator().manual_seed(seed)
    corruption = torch.Generator().manual_seed(seed)  # the text collator's masking
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.learning_rate, weight_decay=0.05)
    schedule = get_cosine_schedule_with_warmup(optimizer, run.steps // 10, run.steps)
    collator = objective.collator(processor["text"], model.objective) if objective.collator else None
    seeded = collator is not None and "generator" in inspect.signature(collator).parameters
    accepted = forward_input_names(model)
    options = run.options()
    model.train()
    losses, start = [], time.perf_counter()
    for step in tqdm(range(run.steps), desc="pretraining"):
        picked = torch.randint(len(rows), (run.batch_size,), generator=generator).tolist()
        if collator is not None:  # text: tokenize, then the objective's collator masks or corrupts
            tokenized = processor["text"](rows.select(picked)["text"][:], **options)
            examples = [{"input_ids": ids} for ids in tokenized["input_ids"]]
            inputs = collator(examples, generator=corruption) if seeded else collator(examples)
        else:
            inputs = process_rows(
                processor, rows.select(picked), run.modality, 0, run.batch_size, "text", options
            )
        device = next(model.parameters()).device
        inputs = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items() if k in accepted
        }
        loss = model(**inputs, **objective.step_kwargs(model.objective, step / run.steps)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses, time.perf_counter() - start


def evaluate(encoder, processor, run: Run) -> dict:
    results = {}
    for evaluation in run.evaluations:
        data = load_demo_dataset(run.modality, evaluation.subset)
        train, test = data["train"], data["test"]
        if evaluation.rows is not None:
            train, test = evaluation.rows(train), evaluation.rows(test)
        report = evaluate_encoder(
            encoder, processor, run.modality, train, test, label_column=evaluation.label_column,
            tasks=evaluation.tasks, progress=False, processor_kwargs=run.options(),
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
        with torch.no_grad():
            predicted = model.forecast(
                inputs["past_values"].to(device), inputs["past_observed_mask"].to(device), FORECAST_HORIZON
            )
        report = evaluate_forecasts(
            predicted.cpu().numpy(),
            future[None],
            history[None],
            season=season,
            observed_mask=~np.isnan(future[None]),
        )
        per_series[row["dataset"]] = report
        if np.isfinite(report["ratio"]["mae"]):
            ratios.append(report["ratio"]["mae"])
    return {"median_mae_ratio_vs_seasonal_naive": float(np.median(ratios)), "series": per_series}


def run(name: str, seed: int, output: Path, steps: int | None = None, device: str = "cpu") -> dict:
    spec = RUNS[name]
    if steps is not None:
        spec = dataclasses.replace(spec, steps=steps)
    torch.manual_seed(seed)
    model = spec.build_model().to(device)
    tokenizer = load_demo_tokenizer() if spec.registered.spec.tokenized else None
    processor = MMFMProcessor.from_model_config(model.config, tokenizer)
    random_init = evaluate(_frozen_copy(model.encoder), processor, spec)
    forecasts = hasattr(model, "forecast")  # next-patch prediction forecasts: score it against seasonal naive
    if forecasts:
        random_init["forecasting"] = forecasting(_frozen_copy(model), processor)
    losses, seconds = pretrain(model, processor, pretraining_rows(spec), spec, seed)
    pretrained = evaluate(model.encoder.eval(), processor, spec)
    if forecasts:
        pretrained["forecasting"] = forecasting(model.eval(), processor)
    result = {
        "objective": name, "modality": spec.modality, "steps": spec.steps,
        "batch_size": spec.batch_size, "seconds": seconds, "first_losses": losses[:10],
        "last_losses": losses[-10:], "random_init": random_init, "pretrained": pretrained,
        "device": str(device),
        "command": f"python examples/pretraining_evidence.py --objective {name} --seed {seed}",
        "registered_objective": spec.objective, "pretraining_config": model.config.pretraining_config,
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
    parser.add_argument("--objective", default="all", choices=["all", *RUNS])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="outputs/evidence")
    parser.add_argument("--steps", type=int, default=None, help="override the objective's pretraining steps")
    parser.add_argument("--device", default="cpu", help="where to pretrain and extract features (e.g. cuda)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = list(RUNS) if args.objective == "all" else [args.objective]
    for name in names:
        result = run(name, args.seed, Path(args.output), args.steps, args.device)
        print("\n".join(markdown_rows(result)), flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
