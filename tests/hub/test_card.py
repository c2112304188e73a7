"""The model card of real tiny runs, written by a dry run: Hub metadata (library, pipeline, tags, datasets,
base model) and a `model-index` holding exactly the run's evaluation numbers; the loss plot next to it; cards
of continued runs, PEFT adapters and plain model folders."""

import json
import shutil

import pytest
from huggingface_hub import ModelCard
from peft import LoraConfig, get_peft_model
from transformers import AutoModel

from mmfm.hub import publish, resolve_source
from tests.training._runs import run_in_process

from .conftest import mae_config, mae_task


def _card(result) -> ModelCard:
    return ModelCard.load(result.folder / "README.md")


def _index(card: ModelCard) -> dict[tuple[str, str], float]:
    """`{(dataset, metric name): value}` of the card's model-index, as the Hub reads it back."""
    return {(r.dataset_name, r.metric_name): r.metric_value for r in card.data.eval_results}


def test_a_binding_run_card_carries_its_metadata_evaluation_and_loss_plot(binding_run):
    result = publish(binding_run, "tester/clip-demo", dry_run=True)
    assert result.folder == binding_run / "publish"
    card = _card(result)
    data = card.data
    assert data.library_name == "transformers" and data.license == "apache-2.0"
    assert data.pipeline_tag == "zero-shot-image-classification"
    assert {"mmfm", "text", "vision", "clip", "self-supervised", "custom_code"} <= set(data.tags)
    assert data.datasets == ["mmfm-demo/digit_captions"] and data.base_model is None
    # Every model number of the evaluation in metrics.json, and nothing else, is in the model-index.
    report = json.loads((binding_run / "metrics.json").read_text())["evaluation"]["clip"]
    expected = {}
    for name, entry in report["retrieval"].items():
        for direction in ("text_to_vision", "vision_to_text"):
            for k in report["ks"]:
                a, b = direction.split("_to_")
                expected[(name, f"{a} to {b} recall@{k}")] = entry[direction][f"recall@{k}"]["model"]
    for name, entry in report["zero_shot"].items():
        expected[(name, "zero-shot accuracy")] = entry["accuracy"]["model"]
        expected[(name, "zero-shot top-5 accuracy")] = entry["top5_accuracy"]["model"]
    assert _index(card) == expected and len(expected) == 8
    assert card.data.model_name == "clip-demo"
    # The loss plot is embedded and shipped byte for byte; hyperparameters and limits are in the text.
    assert "![training loss](loss.png)" in card.text
    assert (result.folder / "loss.png").read_bytes() == (binding_run / "loss.png").read_bytes()
    for text in ("| steps | 4 |", "| learning rate | 0.001 |", "| world size (processes) | 1 |",
                 'AutoModel.from_pretrained("tester/clip-demo", trust_remote_code=True)', "import mmfm",
                 "random init", "small demo corpus (digit_captions)"):  # fmt: skip
        assert text in card.text, text
    # The composite's processors ship their code (processor_config.json): the card loads them without mmfm.
    assert 'AutoImageProcessor.from_pretrained("tester/clip-demo", trust_remote_code=True)' in card.text
    assert "is mmfm code that is not in this repository" not in card.text


def test_an_mae_run_card_reports_its_probes(mae_run):
    card = _card(publish(mae_run / "model", "tester/mae-demo", dry_run=True))
    assert card.data.pipeline_tag == "image-feature-extraction"
    assert {"mmfm", "vision", "mae", "self-supervised"} <= set(card.data.tags)
    probes = json.loads((mae_run / "metrics.json").read_text())["evaluation"]["mae"]["digits/label"]
    assert _index(card) == {
        ("digits", f"kNN accuracy (k={probes['knn']['k']})"): probes["knn"]["accuracy"],
        ("digits", "linear probe accuracy"): probes["linear_probe"]["accuracy"],
        ("digits", "linear probe macro F1"): probes["linear_probe"]["macro_f1"],
    }
    assert {r.task_type for r in card.data.eval_results} == {"image-classification"}
    assert {r.dataset_type for r in card.data.eval_results} == {"mmfm-demo/digits"}


def test_a_continued_run_names_its_base_model(tmp_path, mae_run):
    run_in_process(
        "--config", str(mae_config(tmp_path, {"mae": mae_task(init_from=str(mae_run / "model"))}, steps=2))
    )
    # A local base is not Hub metadata: the card says so and how to set it.
    card = _card(publish(tmp_path / "run", dry_run=True))
    assert card.data.base_model is None
    assert "continues training from a local folder" in card.text and "--base-model" in card.text
    card = _card(publish(tmp_path / "run", dry_run=True, base_model="tester/mae-base"))
    assert card.data.base_model == "tester/mae-base" and card.data.base_model_relation == "finetune"
    assert "[`tester/mae-base`](https://huggingface.co/tester/mae-base)" in card.text


def test_a_peft_adapter_is_published_with_its_base_model(tmp_path, mae_run):
    base = mae_run / "model"
    model = get_peft_model(AutoModel.from_pretrained(base), LoraConfig(r=2, target_modules=["qkv", "fc1"]))
    model.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())[
        "base_model_name_or_path"
    ] == str(base)
    result = publish(tmp_path / "adapter", dry_run=True)
    assert result.folder == tmp_path / "adapter-publish"
    assert "adapter_model.safetensors" in result.files and "README.md" in result.files
    card = _card(result)
    assert card.data.library_name == "peft" and {"peft", "lora", "vision"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "image-feature-extraction"  # from the base model's config
    assert card.data.base_model is None and "adapts a local folder" in card.text
    card = _card(publish(tmp_path / "adapter", dry_run=True, base_model="tester/mae-base"))
    assert card.data.base_model == "tester/mae-base" and card.data.base_model_relation == "adapter"
    assert 'PeftModel.from_pretrained(base, "<user>/adapter")' in card.text


def test_a_model_folder_outside_a_run_gets_a_card_without_a_training_record(tmp_path, mae_run):
    shutil.copytree(mae_run / "model", tmp_path / "encoder")
    source = resolve_source(tmp_path / "encoder")
    assert source.kind == "model" and source.run_dir is None
    result = publish(source, "tester/encoder", dry_run=True, out_dir=tmp_path / "out", license="mit")
    card = _card(result)
    assert card.data.license == "mit" and card.data.eval_results is None
    assert "No training record" in card.text and "loss.png" not in result.files
    # The folder holds the export's files unchanged, plus the card.
    exported = sorted(p.name for p in (mae_run / "model").iterdir())
    assert result.files == sorted([*exported, "README.md"])
    for name in exported:
        assert (result.folder / name).read_bytes() == (mae_run / "model" / name).read_bytes()


@pytest.mark.parametrize("task", ["a", "b"])
def test_one_task_of_a_two_task_run(two_task_run, task):
    result = publish(two_task_run, "tester/two", dry_run=True, task=task)
    assert result.folder == two_task_run / "publish" / task
    source = resolve_source(two_task_run, task)
    assert source.folder == two_task_run / "model" / task and source.task == task
    assert result.files == sorted([*(p.name for p in source.folder.iterdir()), "README.md", "loss.png"])
