"""transformers pipelines for the head tasks transformers has none for: `graph-classification`,
`time-series-classification`, `time-series-regression` and `time-series-forecasting`.

Every head export names its task here in `config.custom_pipelines` and ships this file (the heads' shared code
imports it), so where mmfm is not installed

    pipeline("graph-classification", model=export, trust_remote_code=True)

builds the pipeline, the model and its processor (`preprocessor_config.json`) from the folder alone.
transformers runs a config's custom pipeline only with `trust_remote_code=True`, with or without mmfm (or pass
`pipeline_class=` one of these classes).

Part of the exportable model folder: imports only numpy, torch and transformers.
"""

from typing import Any

import numpy as np
import torch
from transformers import Pipeline


class _ProcessedPipeline(Pipeline):
    """A pipeline whose inputs go through the export's feature extractor (graph or time-series processor)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = True
    _load_tokenizer = False

    def _features(self, inputs: Any) -> dict[str, torch.Tensor]:
        if self.feature_extractor is None:
            raise ValueError(
                f"{type(self).__name__} needs the model's processor: save it next to the model "
                "(`processor.save_pretrained(folder)`) or pass `feature_extractor=`."
            )
        return dict(self.feature_extractor(inputs, return_tensors="pt"))

    def _model_inputs(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names = self.feature_extractor.model_input_names
        return {name: features[name] for name in names if name in features}


class MMFMClassificationPipeline(_ProcessedPipeline):
    """Classify one graph or series (or a list of them, one at a time) into `config.id2label`.

    Answers a list of `{"label", "score"}`, best first: softmax probabilities (single-label), independent
    sigmoid probabilities (multi-label), or the raw predictions of each target, in label order (regression),
    as transformers' `text-classification` pipeline reads `config.problem_type`.

    Args (call time):
        top_k: how many labels to return (all by default; ignored for regression).
    """

    def _sanitize_parameters(self, top_k: int | None = None, **kwargs):
        return {}, {}, ({"top_k": top_k} if top_k is not None else {})

    def preprocess(self, inputs: Any) -> dict[str, torch.Tensor]:
        return self._model_inputs(self._features(inputs))

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.model(**model_inputs).logits}

    def postprocess(self, model_outputs: dict[str, torch.Tensor], top_k: int | None = None) -> list[dict]:
        config = self.model.config
        logits = model_outputs["logits"][0].float()
        problem = config.problem_type or (
            "regression" if config.num_labels == 1 else "single_label_classification"
        )
        labels = [config.id2label[i] for i in range(logits.shape[-1])]
        if problem == "regression":
            return [{"label": label, "score": float(value)} for label, value in zip(labels, logits)]
        scores = logits.sigmoid() if problem == "multi_label_classification" else logits.softmax(-1)
        ranked = sorted(zip(labels, scores.tolist()), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked[: top_k or len(ranked)]]


class MMFMTimeSeriesForecastingPipeline(_ProcessedPipeline):
    """Forecast the next `config.prediction_length` steps of one series (L,) or (L, C) (or of a list of them).

    Answers `{"forecast": np.ndarray}` of shape (H, C), in the units of the input (a processor that scales
    series, `scaling != "none"`, is undone here; the model undoes its own instance normalisation).
    """

    def _sanitize_parameters(self, **kwargs):
        return {}, {}, {}

    def preprocess(self, inputs: Any) -> dict[str, torch.Tensor]:
        features = self._features(inputs)
        model_inputs = self._model_inputs(features)
        for name in ("loc", "scale"):
            if name in features:
                model_inputs[f"processor_{name}"] = features[name]
        return model_inputs

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loc, scale = model_inputs.pop("processor_loc", None), model_inputs.pop("processor_scale", None)
        forecast = self.model(**model_inputs).prediction_outputs
        if scale is not None:
            forecast = forecast * scale + loc
        return {"forecast": forecast}

    def postprocess(self, model_outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {"forecast": model_outputs["forecast"][0].float().numpy()}


# Pipeline task -> (class here, the transformers Auto class that loads its model), for `custom_pipelines`.
PIPELINE_TASKS = {
    "graph-classification": ("MMFMClassificationPipeline", "AutoModelForSequenceClassification"),
    "time-series-classification": ("MMFMClassificationPipeline", "AutoModelForSequenceClassification"),
    "time-series-regression": ("MMFMClassificationPipeline", "AutoModelForSequenceClassification"),
    "time-series-forecasting": ("MMFMTimeSeriesForecastingPipeline", "AutoModelForTimeSeriesPrediction"),
}


def custom_pipelines(tasks: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The `config.custom_pipelines` entry that makes transformers' `pipeline(task, ...)` use these classes."""
    entries = {}
    for task in tasks:
        name, auto_class = PIPELINE_TASKS[task]
        entries[task] = {
            "impl": f"{__name__.rsplit('.', 1)[-1]}.{name}",
            "pt": [auto_class],
            "type": "multimodal",
        }
    return entries


__all__ = [
    "PIPELINE_TASKS",
    "MMFMClassificationPipeline",
    "MMFMTimeSeriesForecastingPipeline",
    "custom_pipelines",
]
