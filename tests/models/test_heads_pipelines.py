"""transformers' pipelines on head exports: `text-classification`, `token-classification`,
`image-classification` and `audio-classification`, with mmfm installed and in a fresh process where `import
mmfm` fails (`trust_remote_code=True`), giving the labels of `config.id2label` and the model's own scores."""

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
from tests.model_inputs import build_model, head_config

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
    }
    for task, name in HEADS_BY_TASK.items():
        modality = "text" if task.startswith(("text", "token")) else name.split("For")[0][4:].lower()
        fields = {"id2label": LABELS}
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
def test_pipeline_with_mmfm(task, exports):
    folder, raw = exports
    runner = pipeline(task, model=str(folder / HEADS_BY_TASK[task]))
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
