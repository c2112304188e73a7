"""The fine-tuning loop: the pretraining `Trainer` (accumulation, clipping, NaN handling, checkpoints and exact
resume, progress, throughput, MFU) plus evaluation on the validation split every `finetune.eval_every`
steps, the best checkpoint by `finetune.metric_for_best`, early stopping, and the outputs of a fine-tuned
model: `adapter/` (PEFT) or `model/`, and the test metrics of the best checkpoint.

The best weights (the parameters that train: the adapters and the head, or every weight) are kept in
`<output_dir>/best/` whenever the validation metric improves; the evaluations, the best step and the
patience count travel in every checkpoint, so a resumed run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from datasets import Dataset
from safetensors.torch import load_file, save_file

from ..evaluation.metrics import compute_metric, mean_absolute_scaled_error
from ..peft_defaults import point_adapter_at_auto_class
from .collective import main_process_result
from .export import export_models
from .finetune_config import METRICS, FinetuneConfig
from .finetune_data import LabelledRowCollator, evaluation_batches
from .finetune_model import count_parameters
from .metrics import peak_memory_bytes
from .trainer import Trainer

logger = logging.getLogger(__name__)

BEST = "best"


class FinetuneTrainer(Trainer):
    """`Trainer` of one fine-tuning task (`tasks = {"finetune": task}`), evaluated on `validation` rows with
    `collate` (a `LabelledRowCollator`)."""

    kind = "fine-tuning"

    def __init__(
        self, config: FinetuneConfig, *args, validation: Dataset, collate: LabelledRowCollator, **kwargs
    ):
        super().__init__(config, *args, **kwargs)
        self.validation, self.collate = validation, collate
        self.finetune = config.finetune
        self.metric = self.finetune.best_metric
        self.evaluations: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"step", "value"}
        self.evaluations_without_improvement = 0
        self.stopped_early = False
        self.best_dir = self.output_dir / BEST
        self.test_metrics: dict[str, float] | None = None

    def data_field(self, task: str) -> str:
        return "data"

    # ------------------------------------------------------------------------------------------ state

    def _trainer_state(self) -> dict[str, Any]:
        return {**super()._trainer_state(), "evaluations": self.evaluations, "best": self.best,
                "without_improvement": self.evaluations_without_improvement}  # fmt: skip

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.evaluations = list(state.get("evaluations", []))
        self.best = state.get("best")
        self.evaluations_without_improvement = int(state.get("without_improvement", 0))

    # ------------------------------------------------------------------------------------------ evaluation

    def after_step(self) -> bool:
        """Evaluate every `eval_every` steps and at the last; keep the best weights; True to stop early."""
        every, last = self.finetune.eval_every, self.step == self.config.training.max_steps
        if not (last or (every and self.step % every == 0)):
            return False
        metrics = self.evaluate(self.validation)
        self.evaluations.append({"step": self.step, **metrics})
        value = metrics[self.metric]
        better = METRICS[self.metric]
        improved = self.best is None or (value > self.best["value"] if better else value < self.best["value"])
        if improved:
            self.best = {"step": self.step, "value": value}
            self.evaluations_without_improvement = 0
            self._save_best()
        else:
            self.evaluations_without_improvement += 1
        logger.info(
            "Step %d validation: %s%s", self.step, _format(metrics), " (best so far)" if improved else ""
        )
        patience = self.finetune.early_stopping_patience
        if patience and self.evaluations_without_improvement >= patience and not last:
            self.stopped_early = True
            logger.info("Early stopping at step %d: %d evaluations without a better validation %s.", self.step,
                        patience, self.metric)  # fmt: skip
            return True
        return False

    @torch.no_grad()
    def evaluate(self, rows: Dataset) -> dict[str, float]:
        """Loss and metrics of the current model on `rows` (every process scores every row, so ZeRO-3's gathers
        match; the main process's numbers are shared so every process decides alike)."""
        self.model.eval()
        losses, predictions, references = [], [], []
        names = self.tasks["finetune"].input_names
        skipped = 0
        for batch in evaluation_batches(rows, self.collate, self.config.training.per_device_batch_size):
            skipped += batch["num_skipped"]
            if not batch["inputs"]:
                continue
            inputs = {k: v.to(self.accelerator.device) for k, v in batch["inputs"].items() if k in names}
            outputs = self.model(**inputs)
            if self.finetune.is_forecasting:
                observed = inputs["future_observed_mask"]
                losses.append((float(outputs.loss) * int(observed.sum()), int(observed.sum())))
                predictions.append(outputs.prediction_outputs.float().cpu())
                references.append(_forecast_references(inputs, batch["inputs"]["naive_scale"]))
                continue
            count = (
                int(inputs["labels"].ne(-100).sum())
                if not self.finetune.is_regression
                else len(inputs["labels"])
            )
            losses.append((float(outputs.loss) * count, count))
            predictions.append(self._predictions(outputs.logits.float()).cpu())
            references.append(inputs["labels"].cpu())
        self.model.train()
        if skipped:
            logger.warning(
                "Evaluation skipped %d bad row(s) of %d; the metrics leave them out.", skipped, len(rows)
            )
        if self.finetune.is_forecasting:
            references = {k: torch.cat([r[k] for r in references]).numpy() for k in references[0]}
        else:
            references = torch.cat(references)
        metrics = self._metrics(losses, torch.cat(predictions), references)
        shared = [metrics]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(shared)
        return shared[0]

    def _predictions(self, logits: torch.Tensor) -> torch.Tensor:
        if self.finetune.is_regression:
            return logits.reshape(logits.shape[0], -1)[:, 0]
        return logits.argmax(-1)

    def _metrics(self, losses: list, predictions: torch.Tensor, references: Any) -> dict[str, float]:
        metrics = {"loss": sum(s for s, _ in losses) / max(1, sum(n for _, n in losses))}
        if self.finetune.is_forecasting:
            return {**metrics, **_forecast_metrics(predictions.numpy(), references)}
        keep = references.reshape(-1) != -100
        y_pred, y_true = predictions.reshape(-1)[keep].numpy(), references.reshape(-1)[keep].numpy()
        if self.finetune.is_regression:
            for name in ("mse", "mae", "r2"):
                metrics[name] = compute_metric(name, y_pred.astype(np.float64), y_true.astype(np.float64))
        else:
            metrics["accuracy"] = compute_metric("accuracy", y_pred, y_true)
            metrics["f1"] = compute_metric("f1", y_pred, y_true, average="macro")
        return metrics

    # ------------------------------------------------------------------------------------------ best weights

    def _trainable_names(self) -> set[str]:
        model = self.accelerator.unwrap_model(self.model)
        return {name for name, p in model.named_parameters() if p.requires_grad}

    def _save_best(self) -> None:
        """The trainable weights of this step to `best/` (every process gathers; the main process writes)."""
        if self.run_folder is not None:
            self.run_folder.ensure()
        state = self.accelerator.get_state_dict(self.model)
        names = self._trainable_names()

        def write() -> None:
            self.best_dir.mkdir(parents=True, exist_ok=True)
            weights = {k: v.detach().cpu().contiguous() for k, v in state.items() if k in names}
            save_file(weights, str(self.best_dir / "weights.safetensors.tmp"))
            Path(self.best_dir / "weights.safetensors.tmp").replace(self.best_dir / "weights.safetensors")
            (self.best_dir / "best.json").write_text(json.dumps(self.best) + "\n")

        main_process_result(self.accelerator, write)
        self.accelerator.wait_for_everyone()

    def score_best(self, test: Dataset) -> dict[str, float]:
        """Put the best validation step's weights back into the model and score them on `test` (every process);
        the result goes to `metrics.json` as `test`."""
        self._load_best()
        self.test_metrics = self.evaluate(test)
        logger.info("Best step %d on the test split: %s", self.best["step"], _format(self.test_metrics))
        return self.test_metrics

    def _load_best(self) -> None:
        saved = json.loads((self.best_dir / "best.json").read_text())
        if saved["step"] != self.best["step"]:
            raise ValueError(
                f"{self.best_dir} holds step {saved['step']}, but the run's best is step {self.best['step']}: the "
                "folder was changed outside the run. Rerun with `overwrite_output_dir=true`."
            )
        model = self.accelerator.unwrap_model(self.model)
        weights = load_file(str(self.best_dir / "weights.safetensors"))
        unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(
                f"{self.best_dir} holds weights the model does not have (e.g. {unexpected[:3]})."
            )

    # ------------------------------------------------------------------------------------------ the end

    def export_finetuned(self, adapter_base: str | None, merge: bool) -> dict[str, str]:
        """`model/` (full fine-tuning: `adapter_base` None) or `adapter/` naming `adapter_base` as its base model,
        plus `model/` merged when `merge`, of the current weights; returns kind -> folder."""
        if adapter_base is None:
            folder = export_models(self.accelerator, self.model, self.tasks, self.output_dir / "model")
            return {"model": folder["finetune"]}
        processor = self.tasks["finetune"].processor
        model = self.accelerator.unwrap_model(self.model)
        model.peft_config["default"].base_model_name_or_path = adapter_base
        state = self.accelerator.get_state_dict(self.model)  # every process: ZeRO-3 gathers collectively
        exported = {"adapter": str(self.output_dir / "adapter")}
        if merge:
            exported["model"] = str(self.output_dir / "model")

        def write() -> None:
            model.save_pretrained(exported["adapter"], state_dict=state)
            point_adapter_at_auto_class(exported["adapter"], model.get_base_model())
            processor.save_pretrained(exported["adapter"])
            if merge:
                merged = model.merge_and_unload()
                merged.save_pretrained(exported["model"])
                processor.save_pretrained(exported["model"])

        main_process_result(self.accelerator, write)
        self.accelerator.wait_for_everyone()
        return exported

    def plotted_history(self) -> list[dict[str, Any]]:
        return self.history + [{"step": e["step"], "validation_loss": e["loss"]} for e in self.evaluations]

    def metrics_summary(self, exported: dict[str, str]) -> dict[str, Any]:
        summary = super().metrics_summary(exported)
        trainable, total = count_parameters(self.accelerator.unwrap_model(self.model))
        summary.update(
            validation=self.evaluations,
            best_step=self.best and self.best["step"],
            best_validation=next(
                (e for e in self.evaluations if self.best and e["step"] == self.best["step"]), None
            ),
            metric_for_best=self.metric,
            stopped_early=self.stopped_early,
            trainable_parameters=trainable,
            total_parameters=total,
            peak_memory_bytes=peak_memory_bytes(self.accelerator.device),
            mean_step_seconds=self.train_seconds / self.step if self.step else None,
            test=self.test_metrics,
        )
        return summary


def _forecast_references(inputs: dict[str, torch.Tensor], scale: torch.Tensor) -> dict[str, torch.Tensor]:
    """What scores a batch of forecasts: targets and their mask (B, H, C), the MASE scale (B, C) and the
    last-value baseline (B, H, C): each context's last step repeated (the processor pads on the left, so
    the last step is the newest; a missing one is 0)."""
    future = inputs["future_values"].float().cpu()
    last = inputs["past_values"][:, -1:, :].float().cpu().expand_as(future)
    return {"target": future, "observed": inputs["future_observed_mask"].cpu(), "scale": scale.cpu(),
            "last_value": last}  # fmt: skip


def _forecast_metrics(predictions: np.ndarray, references: dict[str, np.ndarray]) -> dict[str, float]:
    """mse, mae (over observed targets, in the data's units), mase, and the last-value baseline's mse and mae."""
    keep = references["observed"].astype(bool)
    target = references["target"][keep].astype(np.float64)
    metrics = {}
    for prefix, forecast in (("", predictions), ("last_value_", references["last_value"])):
        for name in ("mse", "mae"):
            metrics[prefix + name] = compute_metric(name, forecast[keep].astype(np.float64), target)
        metrics[prefix + "mase"] = mean_absolute_scaled_error(
            forecast, references["target"], references["observed"], references["scale"]
        )
    return metrics


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v))


__all__ = ["FinetuneTrainer"]
