"""The fine-tuning recipe on every modality, fully and with LoRA, DoRA and IA3, in this process on the test
demo corpus with tiny widths: it trains, evaluates on the validation split, keeps the best step, scores it
on the test split and exports an adapter that `AutoPeftModel*` reloads with the same outputs."""

import importlib
import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from mmfm.training.finetune_config import load_finetune_config
from mmfm.training.finetune_data import LabelledRowCollator, evaluation_batches, load_labelled_data
from mmfm.training.finetune_model import finetune_modality

from ._runs import TINY, metrics

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "recipes" / "configs" / "finetune").glob("*.yaml"))
# Per modality: the demo subset, label column and head of the tiny runs, and encoder fields.
RUNS = {
    "text": ("newsgroups", "label", "classification", {}),
    "vision": ("digits", "label", "classification", {"image_size": 16, "patch_size": 4}),
    "audio": ("spoken_digits", "label", "classification", {}),
    "graph": ("molecules", "tpsa", "regression", {}),
    "timeseries": ("captioned", "label", "classification", {}),
}


def run_finetune(*argv: str) -> dict:
    """`mmfm.recipes.finetune.main(argv)` in this process, with a fresh Accelerator state."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        return importlib.import_module("mmfm.recipes.finetune").main(list(argv))
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def tiny_args(out: Path, modality: str = "vision", *extra: str) -> list[str]:
    """A tiny run on `modality`'s demo subset (from an empty config, not the default recipe), 4 steps."""
    subset, label, head, fields = RUNS[modality]
    empty = out.parent / "empty.yaml"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("{}\n")
    return [
        "--config", str(empty), f"output_dir={out}", f"modality={modality}", f"data.subset={subset}", f"data.label_column={label}",
        f"finetune.head={head}", "finetune.metric_for_best=loss", "finetune.eval_every=2", "data.max_length=32",
        "training.max_steps=4", "training.per_device_batch_size=8", "training.warmup_ratio=0",
        "checkpointing.save_every=0", "logging.log_every=1", "logging.progress_bar=false", "logging.report_to=[]",
        *[f"model.config.{k}={v}" for k, v in {**TINY, **fields}.items()], *extra,
    ]  # fmt: skip


def score(model, out: Path, split: str) -> dict[str, float]:
    """Mean loss and predictions of `model` on a split of the run in `out`, batched as the run batches."""
    config = load_finetune_config(out / "run_config.yaml")
    spec = finetune_modality(config)
    data = load_labelled_data(config, spec)
    from mmfm.processing import MMFMProcessor

    folder = out / ("adapter" if (out / "adapter").is_dir() else "model")
    collate = LabelledRowCollator(spec, MMFMProcessor.from_pretrained(folder), config, data.problem_type)
    total, count, logits = 0.0, 0, []
    with torch.no_grad():
        for batch in evaluation_batches(getattr(data, split), collate, config.training.per_device_batch_size):
            if not batch["inputs"]:
                continue
            outputs = model.eval()(**batch["inputs"])
            labels = batch["inputs"]["labels"]
            n = int(labels.ne(-100).sum()) if labels.dim() == 2 else len(labels)  # tokens, or rows
            total, count = total + float(outputs.loss) * n, count + n
            logits.append(outputs.logits)
    return {"loss": total / count, "logits": torch.cat(logits)}


def load_adapter(folder: Path):
    """The adapter through the peft Auto class a user would pick: the task's for text, `AutoPeftModel` (which
    reads the head's transformers Auto class from `auto_mapping`) for the other heads."""
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["task_type"] or config["auto_mapping"]["parent_library"] == "transformers"
    auto = {
        "SEQ_CLS": "AutoPeftModelForSequenceClassification",
        "TOKEN_CLS": "AutoPeftModelForTokenClassification",
        None: "AutoPeftModel",
    }
    name = auto[config["task_type"]]
    return getattr(importlib.import_module("peft"), name).from_pretrained(folder)


@pytest.mark.parametrize(
    "modality,method",
    [("text", "lora"), ("vision", "lora"), ("audio", "lora"), ("graph", "lora"), ("timeseries", "lora"),
     ("text", "dora"), ("timeseries", "ia3"), ("vision", "none"), ("graph", "none")],
)  # fmt: skip
def test_finetune_runs_evaluates_and_exports(modality, method, tmp_path):
    out = tmp_path / "run"
    result = run_finetune(*tiny_args(out, modality, f"finetune.peft.method={method}"))
    assert result == metrics(out)
    assert result["steps"] == 4 and [e["step"] for e in result["validation"]] == [2, 4]
    losses = [e["loss"] for e in result["validation"]]
    assert result["best_step"] == [2, 4][losses.index(min(losses))]
    assert set(result["test"]) >= (
        {"mse", "mae", "r2"} if RUNS[modality][2] == "regression" else {"accuracy", "f1"}
    )
    assert result["peak_memory_bytes"] > 0 and result["mean_step_seconds"] > 0
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    if method == "none":
        assert result["trainable_parameters"] == result["total_parameters"]
        from transformers import AutoModel

        assert AutoModel.from_pretrained(out / "model") is not None  # the encoder of the fine-tuned head
        return
    assert 0 < result["trainable_parameters"] < result["total_parameters"]
    # The adapter, reloaded as a user would (base model and head named in adapter_config.json), scores the test
    # split exactly as the run's best model did.
    adapter = load_adapter(out / "adapter")
    assert score(adapter, out, "test")["loss"] == pytest.approx(result["test"]["loss"], rel=1e-5, abs=1e-6)


def test_merged_model_equals_the_adapter(tmp_path):
    from transformers import AutoModelForImageClassification

    out = tmp_path / "run"
    run_finetune(*tiny_args(out, "vision", "finetune.peft.method=lora", "finetune.merge_adapter=true"))
    merged = AutoModelForImageClassification.from_pretrained(out / "model")
    assert not any("lora" in name for name in merged.state_dict())
    adapter, plain = score(load_adapter(out / "adapter"), out, "test"), score(merged, out, "test")
    torch.testing.assert_close(plain["logits"], adapter["logits"], atol=1e-5, rtol=1e-5)


def test_the_exported_model_is_the_best_validation_step(tmp_path):
    from transformers import AutoModelForImageClassification

    out = tmp_path / "run"
    result = run_finetune(*tiny_args(out, "vision", "training.max_steps=6", "finetune.eval_every=1",
                                     "training.learning_rate=0.02"))  # fmt: skip
    losses = [e["loss"] for e in result["validation"]]
    assert result["best_step"] == losses.index(min(losses)) + 1
    exported = score(AutoModelForImageClassification.from_pretrained(out / "model"), out, "validation")
    assert exported["loss"] == pytest.approx(min(losses), rel=1e-5)


def test_early_stopping_stops(tmp_path):
    result = run_finetune(*tiny_args(tmp_path / "run", "vision", "training.max_steps=20", "finetune.eval_every=1",
                                     "finetune.early_stopping_patience=2", "finetune.metric_for_best=accuracy",
                                     "training.learning_rate=1e-12"))  # fmt: skip
    assert result["stopped_early"] and result["steps"] == 3 and result["best_step"] == 1


def test_resume_continues_exactly(tmp_path):
    common = ["finetune.peft.method=lora", "finetune.eval_every=3", "training.lr_scheduler=constant",
              "checkpointing.save_every=3"]  # fmt: skip
    straight = run_finetune(*tiny_args(tmp_path / "straight", "text", *common, "training.max_steps=6"))
    run_finetune(*tiny_args(tmp_path / "resumed", "text", *common, "training.max_steps=3"))
    resumed = run_finetune(*tiny_args(tmp_path / "resumed", "text", *common, "training.max_steps=6"))
    assert resumed["resumed_from"].endswith("step_00000003")
    assert [e["loss"] for e in resumed["validation"]] == [e["loss"] for e in straight["validation"]]
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in straight["history"]]
    a, b = (
        load_file(str(tmp_path / name / "adapter" / "adapter_model.safetensors"))
        for name in ("straight", "resumed")
    )
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "extra,error,match",
    [
        (["finetune.peft.method=adalora"], ValueError, r"finetune\.peft\.method.*one of"),
        (["finetune.peft.method=lora", "finetune.peft.target_modules=[query]"], ValueError,
         r"finetune\.peft\.target_modules.*'query'.*matches no module.*qkv"),
        (["finetune.num_labels=3"], ValueError, r"finetune\.num_labels.*3 contradicts.*10 classes"),
        (["data.label_column=digit"], ValueError, r"data\.label_column.*'digit'.*columns are \['image', 'label'"),
        (["finetune.head=regression", "data.label_column=caption"], ValueError,
         r"regression needs numbers in `data\.label_column` = 'caption'"),
        (["finetune.head=token_classification"], ValueError, r"finetune\.head.*token_classification.*vision"),
    ],
    ids=["peft-method", "target-modules", "num-labels", "label-column", "regression-on-text", "head"],
)  # fmt: skip
def test_bad_input_is_refused_before_training(tmp_path, extra, error, match):
    with pytest.raises(error, match=match):
        run_finetune(*tiny_args(tmp_path / "run", "vision", *extra))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_base_model_of_another_modality_is_refused(tmp_path):
    from mmfm.models import MMFMTextConfig, MMFMTextModel

    MMFMTextModel(MMFMTextConfig.from_preset("tiny", **TINY)).save_pretrained(tmp_path / "text_encoder")
    args = [a for a in tiny_args(tmp_path / "run", "vision") if not a.startswith("model.config")]
    with pytest.raises(ValueError, match=r"model\.init_from.*is a text model, but `modality` is 'vision'"):
        run_finetune(*args, f"model.init_from={tmp_path / 'text_encoder'}")


@pytest.mark.parametrize("config", SHIPPED, ids=[c.stem for c in SHIPPED])
def test_shipped_configs_parse(config):
    run = load_finetune_config(config)
    assert run.finetune.eval_every > 0 and (run.modality or run.model.init_from)
    assert load_finetune_config(config.stem).data == run.data  # by shipped name, as `--config vision`


def test_init_from_a_pretraining_export_starts_from_its_encoder(tmp_path):
    """A pretraining run's `model/` (MAE: encoder plus decoder) starts the head's encoder; the decoder is dropped."""
    from ._runs import mae_run, run_in_process

    run_in_process(*mae_run(tmp_path, "training.max_steps=1"))
    pretrained = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    args = [
        a
        for a in tiny_args(tmp_path / "ft", "vision", "finetune.peft.method=lora")
        if "model.config" not in a
    ]
    result = run_finetune(
        *args, f"model.init_from={tmp_path / 'run' / 'model'}", "model.config.image_size=16"
    )
    assert result["steps"] == 4
    # The adapter's base: the MAE encoder's weights under the head (10 digit classes, so written to base_model/).
    base = load_file(str(tmp_path / "ft" / "base_model" / "model.safetensors"))
    encoder = {k: v for k, v in pretrained.items() if k.startswith("encoder.")}
    assert encoder and all(torch.equal(base[k], v) for k, v in encoder.items())
    assert not any(k.startswith("decoder") for k in base)


def test_label_fraction_keeps_a_stratified_share(tmp_path):
    config = load_finetune_config(
        None, tiny_args(tmp_path / "run", "vision")[2:] + ["data.label_fraction=0.25"]
    )
    data = load_labelled_data(config, finetune_modality(config))
    full = load_labelled_data(load_finetune_config(None, tiny_args(tmp_path / "run", "vision")[2:]),
                              finetune_modality(config))  # fmt: skip
    assert len(data.train) == pytest.approx(0.25 * len(full.train), abs=1)
    assert set(data.train["label"]) == set(full.train["label"])  # every class kept
    assert data.validation["label"] == full.validation["label"]  # the validation rows do not move


def test_token_classification_on_local_files(tmp_path):
    """Local JSON lines with one class id per token (-100 where no loss is wanted) train a token classifier."""
    from mmfm.data.demo import load_demo_tokenizer

    from ._runs import demo_texts, write_jsonl

    tokenizer = load_demo_tokenizer()
    rows = []
    for text in demo_texts(60):
        ids = tokenizer(text, truncation=True, max_length=32)["input_ids"]
        rows.append({"text": text, "tags": [-100 if i in tokenizer.all_special_ids else i % 3 for i in ids]})
    data = write_jsonl(tmp_path / "tagged.jsonl", rows)
    args = [a for a in tiny_args(tmp_path / "run", "text") if not a.startswith(("data.", "finetune.head"))]
    result = run_finetune(*args, f"data.source={data}", "data.label_column=tags", "data.max_length=32",
                          "finetune.head=token_classification", "finetune.peft.method=lora")  # fmt: skip
    assert result["steps"] == 4 and 0 <= result["test"]["accuracy"] <= 1
    adapter = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "TOKEN_CLS"
    assert score(load_adapter(tmp_path / "run" / "adapter"), tmp_path / "run", "test")[
        "loss"
    ] == pytest.approx(result["test"]["loss"], rel=1e-5)


def forecast(model, out: Path, split: str) -> dict:
    """Mean loss (over observed targets) and forecasts of `model` on a split of the forecasting run in `out`."""
    config = load_finetune_config(out / "run_config.yaml")
    spec = finetune_modality(config)
    data = load_labelled_data(config, spec)
    from mmfm.processing import MMFMProcessor

    folder = out / ("adapter" if (out / "adapter").is_dir() else "model")
    collate = LabelledRowCollator(
        spec, MMFMProcessor.from_pretrained(folder), config, data.problem_type, data.prediction_length
    )
    total, count, predictions = 0.0, 0, []
    with torch.no_grad():
        for batch in evaluation_batches(getattr(data, split), collate, config.training.per_device_batch_size):
            inputs = {k: v for k, v in batch["inputs"].items() if k != "naive_scale"}
            outputs = model.eval()(**inputs)
            n = int(inputs["future_observed_mask"].sum())
            total, count = total + float(outputs.loss) * n, count + n
            predictions.append(outputs.prediction_outputs)
    return {"loss": total / count, "predictions": torch.cat(predictions), "rows": len(getattr(data, split))}


@pytest.mark.parametrize("method", ["none", "lora"])
def test_forecasting_runs_evaluates_and_exports(method, tmp_path):
    """The forecasting head: each series' last 8 steps from the steps before; MSE/MAE/MASE and the last-value
    baseline scored; the export (model or adapter) loads through AutoModelForTimeSeriesPrediction and forecasts
    (B, 8, C), scoring the test split as the run did."""
    out = tmp_path / "run"
    result = run_finetune(*tiny_args(out, "timeseries", "finetune.head=forecasting", "finetune.prediction_length=8",
                                     "finetune.metric_for_best=mase", f"finetune.peft.method={method}"))  # fmt: skip
    assert result["steps"] == 4 and [e["step"] for e in result["validation"]] == [2, 4]
    scores = [e["mase"] for e in result["validation"]]
    assert result["metric_for_best"] == "mase" and result["best_step"] == [2, 4][scores.index(min(scores))]
    names = {"loss", "mse", "mae", "mase", "last_value_mse", "last_value_mae", "last_value_mase"}
    assert set(result["test"]) == names and all(v >= 0 for v in result["test"].values())
    assert result["test"]["loss"] == pytest.approx(result["test"]["mse"], rel=1e-4)  # the head's loss is the MSE
    if method == "none":
        from transformers import AutoModelForTimeSeriesPrediction

        model = AutoModelForTimeSeriesPrediction.from_pretrained(out / "model")
    else:
        assert 0 < result["trainable_parameters"] < result["total_parameters"]
        adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert adapter["modules_to_save"] == ["prediction_head"]
        assert adapter["auto_mapping"]["base_model_class"] == "AutoModelForTimeSeriesPrediction"
        model = load_adapter(out / "adapter")
    scored = forecast(model, out, "test")
    assert scored["predictions"].shape == (scored["rows"], 8, 1)
    assert scored["loss"] == pytest.approx(result["test"]["loss"], rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    "extra,match",
    [
        (["finetune.prediction_length=250"], (r"shorter than `finetune\.prediction_length` \(250\) \+ a minimum "
         r"context of one patch \(\d+\).*row 0: \d+ steps.*Lower `finetune\.prediction_length`")),
        (["finetune.metric_for_best=accuracy"], r"metric_for_best.*accuracy does not score forecasting.*mase"),
        (["data.label_column=past_values"], r"label_column.*past_values.*leave `data\.label_column`"),
    ],
    ids=["too-short", "metric", "label-column"],
)  # fmt: skip
def test_bad_forecasting_input_is_refused(tmp_path, extra, match):
    with pytest.raises(ValueError, match=match):
        run_finetune(*tiny_args(tmp_path / "run", "timeseries", "finetune.head=forecasting", *extra))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_forecasting_skips_and_counts_short_series_of_local_data(tmp_path, caplog):
    """Local series without a label column: with `on_bad_sample=skip` the too-short ones are dropped and counted
    (named in the warning), with `raise` refused naming the first; the targets are each series' last steps."""
    from ._runs import write_jsonl

    rows = [{"past_values": [float(i + step) for step in range(40 if i % 10 else 12)]} for i in range(50)]
    source = write_jsonl(tmp_path / "series.jsonl", rows)
    args = tiny_args(tmp_path / "run", "timeseries", "finetune.head=forecasting", "finetune.prediction_length=8",
                     f"data.source={source}")[2:]  # fmt: skip
    config = load_finetune_config(None, args)
    with caplog.at_level("WARNING"):
        data = load_labelled_data(config, finetune_modality(config))
    assert data.prediction_length == 8 and data.problem_type == "forecasting"
    assert len(data.train) + len(data.validation) + len(data.test) == 45  # 5 of 50 had 12 < 8 + 8 steps
    assert "shorter than `finetune.prediction_length` (8)" in caplog.text
    batch = LabelledRowCollator(finetune_modality(config), _processor(config), config, "forecasting", 8)(
        [dict(data.test[0])]
    )["inputs"]
    assert batch["future_values"][0, :, 0].tolist() == data.test[0]["past_values"][-8:]
    assert batch["past_values"][0, -1, 0] == data.test[0]["past_values"][-9]  # the context ends just before
    with pytest.raises(ValueError, match=r"4 of 40 series .*\(train\).* row \d+: 12 steps.*on_bad_sample=skip"):
        load_labelled_data(load_finetune_config(None, [*args, "data.on_bad_sample=raise"]), finetune_modality(config))


def _processor(config):
    from mmfm.models import MMFMTimeSeriesConfig
    from mmfm.processing import MMFMProcessor

    encoder = MMFMTimeSeriesConfig.from_preset(config.model.preset, **config.model.config)
    return MMFMProcessor.from_model_config(encoder, None)
