"""transformers' pipelines on head exports: `text-classification`, `token-classification`,
`image-classification` and `audio-classification`, and the exports' own (`config.custom_pipelines`,
`pipeline_mmfm.py`) `graph-classification`, `time-series-classification`, `time-series-regression` and
`time-series-forecasting`, with mmfm installed and in a fresh process where `import mmfm` fails
(`trust_remote_code=True`), giving the labels of `config.id2label` and the model's own scores."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import mmfm  # noqa: F401  (registers the Auto classes)
from mmfm.modalities import get_modality
from mmfm.processing import train_tokenizer
from tests.model_inputs import HEAD_FIELDS, build_model, head_config

SCRIPT = Path(__file__).with_name("_pipelines_without_mmfm.py")
LABELS = {0: "red", 1: "green", 2: "blue"}
TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a red circle and a blue square",
    "one two three",
] * 10
HEADS_BY_TASK = {
    "text-classification": "MMFMTextForSequenceClassification",
    "token-classification": "MMFMTextForTokenClassification",
    "image-classification": "MMFMVisionForImageClassification",
    "audio-classification": "MMFMAudioForAudioClassification",
}
# The tasks transformers has no pipeline for, served by the export's own `pipeline_mmfm.py`.
CUSTOM_HEADS_BY_TASK = {
    "graph-classification": "MMFMGraphForGraphClassification",
    "time-series-classification": "MMFMTimeSeriesForClassification",
    "time-series-regression": "MMFMTimeSeriesForRegression",
    "time-series-forecasting": "MMFMTimeSeriesForPrediction",
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """One export per task (head, its tokenizer or processor) and a raw input for it."""
    folder = tmp_path_factory.mktemp("pipelines")
    tokenizer = train_tokenizer(TEXTS, vocab_size=150)
    raw = {
        "text-classification": "the quick red fox",
        "token-classification": "a blue circle and one square",
        "image-classification": (np.random.default_rng(0).random((40, 44, 3)) * 255).astype("uint8"),
        "audio-classification": np.random.default_rng(0).standard_normal(8000).astype("float32"),
        "graph-classification": {
            "edge_index": [(0, 1), (1, 2), (2, 3), (3, 0)],
            "node_features": np.eye(4, 3),
        },
        "time-series-classification": np.random.default_rng(1).standard_normal((50, 2)).astype("float32"),
        "time-series-regression": np.random.default_rng(2).standard_normal((64, 2)).astype("float32"),
        "time-series-forecasting": 3 + np.random.default_rng(3).standard_normal((40, 2)).astype("float32"),
    }
    for task, name in {**HEADS_BY_TASK, **CUSTOM_HEADS_BY_TASK}.items():
        modality = "text" if task.startswith(("text", "token")) else name.split("For")[0][4:].lower()
        fields = {"id2label": LABELS} if task != "time-series-regression" else {}
        if modality == "text":
            fields.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
        torch.manual_seed(0)
        config = head_config(name, **fields)
        build_model(name, config).save_pretrained(folder / name)
        processor = tokenizer if modality == "text" else get_modality(modality).build_processor(config, None)
        processor.save_pretrained(folder / name)
        torch.save(raw[task], folder / f"{name}_input.pt")
    return folder, raw


def _expected_scores(task: str, runner, raw) -> torch.Tensor:
    """The model's own probabilities for `raw` (softmax of its logits), computed without the pipeline."""
    if task == "image-classification":
        from PIL import Image

        inputs = runner.image_processor(Image.fromarray(raw), return_tensors="pt")
    elif task == "audio-classification":
        extractor = runner.feature_extractor
        inputs = extractor(raw, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    else:
        inputs = runner.tokenizer(raw, return_tensors="pt")
    with torch.no_grad():
        return runner.model(**inputs).logits.softmax(-1)[0]


@pytest.mark.parametrize("task", HEADS_BY_TASK)
def test_pipeline_with_mmfm(task, exports, capsys):
    folder, raw = exports
    runner = pipeline(task, model=str(folder / HEADS_BY_TASK[task]))
    # With mmfm installed nothing is remote code: no "run the custom code? [y/N]" question on stdin (the
    # pipelines' video-processor probe asked it for image processors until mmfm registered "no video processor").
    assert "custom code" not in capsys.readouterr().out
    assert type(runner.model).__module__.startswith("mmfm.models")
    expected = _expected_scores(task, runner, raw[task])
    if task == "token-classification":
        answer = runner(raw[task])
        words = raw[task].split()
        assert [a["word"] for a in answer] == words  # one entity per word piece (here whole words)
        for index, entity in enumerate(answer, start=1):  # index 0 is [CLS]
            assert entity["entity"] == LABELS[int(expected[index].argmax())]
            assert entity["score"] == pytest.approx(float(expected[index].max()), abs=1e-5)
        return
    answer = runner(raw[task], top_k=None)
    assert sorted(a["label"] for a in answer) == sorted(LABELS.values())
    scores = {a["label"]: a["score"] for a in answer}
    for index, label in LABELS.items():
        assert scores[label] == pytest.approx(float(expected[index]), abs=1e-5)


@pytest.fixture(scope="module")
def answers_without_mmfm(exports):
    folder, _ = exports
    specs = [f"{task}:{name}" for task, name in HEADS_BY_TASK.items()]
    env = {**os.environ, "HF_HOME": str(folder / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    subprocess.run([sys.executable, str(SCRIPT), str(folder), *specs], cwd=folder, env=env, check=True,
                   timeout=300)  # fmt: skip
    return json.loads((folder / "pipeline_outputs.json").read_text())


@pytest.mark.parametrize("task", HEADS_BY_TASK)
def test_pipeline_without_mmfm_gives_the_same_answer(task, exports, answers_without_mmfm):
    folder, raw = exports
    result = answers_without_mmfm[f"{task}:{HEADS_BY_TASK[task]}"]
    assert "error" not in result, result.get("traceback")
    assert result["model_module"].startswith("transformers_modules.")
    runner = pipeline(task, model=str(folder / HEADS_BY_TASK[task]))
    kwargs = {} if task == "token-classification" else {"top_k": None}
    local = json.loads(json.dumps(runner(raw[task], **kwargs), default=float))
    remote = result["answer"]
    if task != "token-classification":  # the pipeline without top_k=None answers the best label only
        assert remote[0]["label"] == max(local, key=lambda a: a["score"])["label"]
        assert remote[0]["score"] == pytest.approx(max(a["score"] for a in local), abs=1e-5)
    else:
        assert [(a["word"], a["entity"]) for a in remote] == [(a["word"], a["entity"]) for a in local]
        for r, lo in zip(remote, local):
            assert r["score"] == pytest.approx(lo["score"], abs=1e-5)


def _own_answer(task: str, runner, raw):
    """What the custom pipeline must answer, from the processor and the model called directly."""
    features = runner.feature_extractor(raw, return_tensors="pt")
    inputs = {k: features[k] for k in runner.feature_extractor.model_input_names}
    with torch.no_grad():
        output = runner.model(**inputs)
    if task == "time-series-forecasting":
        return output.prediction_outputs[0]
    if task == "time-series-regression":
        return {runner.model.config.id2label[i]: float(v) for i, v in enumerate(output.logits[0])}
    return {LABELS[i]: float(p) for i, p in enumerate(output.logits.softmax(-1)[0])}


def _check_custom_answer(task: str, answer, expected) -> None:
    if task == "time-series-forecasting":
        forecast = torch.as_tensor(np.asarray(answer["forecast"], dtype=np.float32))
        assert forecast.shape == expected.shape == (HEAD_FIELDS["prediction_length"], 2)
        torch.testing.assert_close(forecast, expected, rtol=1e-5, atol=1e-5)
        return
    assert {a["label"] for a in answer} == set(expected)
    for entry in answer:
        assert entry["score"] == pytest.approx(expected[entry["label"]], abs=1e-5)
    if task != "time-series-regression":
        assert [a["score"] for a in answer] == sorted((a["score"] for a in answer), reverse=True)


@pytest.mark.parametrize("task", CUSTOM_HEADS_BY_TASK)
def test_custom_pipeline_with_mmfm(task, exports):
    folder, raw = exports
    saved = json.loads((folder / CUSTOM_HEADS_BY_TASK[task] / "config.json").read_text())
    assert set(saved["custom_pipelines"]) == {task}
    assert (folder / CUSTOM_HEADS_BY_TASK[task] / "pipeline_mmfm.py").exists()
    runner = pipeline(task, model=str(folder / CUSTOM_HEADS_BY_TASK[task]), trust_remote_code=True)
    _check_custom_answer(task, runner(raw[task]), _own_answer(task, runner, raw[task]))
    if task in ("graph-classification", "time-series-classification"):
        assert len(runner(raw[task], top_k=1)) == 1


@pytest.fixture(scope="module")
def custom_answers_without_mmfm(exports):
    folder, _ = exports
    specs = [f"{task}:{name}" for task, name in CUSTOM_HEADS_BY_TASK.items()]
    (folder / "custom").mkdir(exist_ok=True)
    env = {**os.environ, "HF_HOME": str(folder / "hf_home_custom"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    subprocess.run([sys.executable, str(SCRIPT), str(folder), *specs], cwd=folder / "custom", env=env,
                   check=True, timeout=300)  # fmt: skip
    return json.loads((folder / "pipeline_outputs.json").read_text())


@pytest.mark.parametrize("task", CUSTOM_HEADS_BY_TASK)
def test_custom_pipeline_without_mmfm(task, exports, custom_answers_without_mmfm):
    folder, raw = exports
    result = custom_answers_without_mmfm[f"{task}:{CUSTOM_HEADS_BY_TASK[task]}"]
    assert "error" not in result, result.get("traceback")
    assert result["model_module"].startswith("transformers_modules.")
    runner = pipeline(task, model=str(folder / CUSTOM_HEADS_BY_TASK[task]), trust_remote_code=True)
    _check_custom_answer(task, result["answer"], _own_answer(task, runner, raw[task]))
