"""Text objectives' models (mlm, clm, rts): tied heads, save/load through every Auto class they declare
(with and without mmfm), losses that fall when trained, labels rejected with a clear error, and
checkpoints of one objective refused by another's model unless asked for explicitly."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from transformers import AutoModel, AutoModelForMaskedLM

import mmfm  # noqa: F401  (registers the Auto classes)
from mmfm.models import (
    MMFMTextConfig,
    MMFMTextForCausalLM,
    MMFMTextForMaskedLM,
    MMFMTextForPreTraining,
    MMFMTextModel,
)
from mmfm.objectives import get_objective
from tests.model_inputs import objective_config
from tests.objectives import text_examples, text_tokenizer

SCRIPT = Path(__file__).with_name("_load_heads_without_mmfm.py")
TEXT_OBJECTIVES = ("mlm", "clm", "rts")
MODEL_CLASSES = {"mlm": MMFMTextForMaskedLM, "clm": MMFMTextForCausalLM, "rts": MMFMTextForPreTraining}
# The model a batch runs on: "rts_mlm" is the RTS model given masked-LM labels too (both of its heads).
BATCH_MODELS = {"mlm": "mlm", "clm": "clm", "rts": "rts", "rts_mlm": "rts"}


def _config(name: str) -> MMFMTextConfig:
    """The tiny encoder of objective `name`, with the encoder fields the objective prefers (clm: last-token
    pooling) as a training run would build it."""
    return objective_config(name, **get_objective(name).encoder_defaults)


def _model(name: str):
    torch.manual_seed(0)
    return get_objective(name).model_class(_config(name))


@pytest.fixture(scope="module")
def batches():
    """One fixed, seeded batch per objective, corrupted by the collator the registry declares for it
    (from the model's objective config); "rts_mlm" carries both kinds of labels."""
    tokenizer = text_tokenizer()
    examples = text_examples(tokenizer, count=8, max_length=40)
    made = {}
    for name in TEXT_OBJECTIVES:
        collator = get_objective(name).collator(tokenizer, _model(name).objective)
        seeded = "generator" in inspect.signature(collator).parameters  # the corrupting collators
        made[name] = (
            collator(examples, generator=torch.Generator().manual_seed(0)) if seeded else collator(examples)
        )
    made["rts_mlm"] = {**made["mlm"], "substitution_labels": made["rts"]["substitution_labels"]}
    return made


def _tied(model) -> bool:
    embedding = model.encoder.embeddings.word_embeddings.weight
    decoder = model.get_output_embeddings().weight
    return decoder is embedding and decoder.data_ptr() == embedding.data_ptr()


def _tensors(output) -> dict:
    return {key: value for key, value in output.items() if isinstance(value, torch.Tensor)}


def _assert_same_outputs(got: dict, expected: dict, where: str) -> None:
    """The same output fields; the loss bit for bit, every other tensor to float32 rounding (weights loaded
    from safetensors sit at unaligned offsets, where CPU matmul kernels round differently, ~1e-10)."""
    assert set(got) == set(expected), where
    assert "loss" in expected, where
    torch.testing.assert_close(got["loss"], expected["loss"], rtol=0, atol=0, msg=f"{where}: loss differs")
    for key, value in expected.items():
        torch.testing.assert_close(
            got[key], value, rtol=1e-6, atol=1e-6, msg=lambda m, k=key: f"{where}: {k}: {m}"
        )


def test_registry_trains_the_text_models():
    for name, model_class in MODEL_CLASSES.items():
        assert get_objective(name).model_class is model_class
        assert get_objective(name).modality == "text"
    assert "AutoModelForMaskedLM" in MMFMTextForMaskedLM.auto_classes
    assert "AutoModelForCausalLM" in MMFMTextForCausalLM.auto_classes


@pytest.mark.parametrize("name", TEXT_OBJECTIVES)
def test_head_is_tied_to_input_embeddings_after_init_and_load(name, tmp_path):
    model = _model(name)
    assert _tied(model)
    model.save_pretrained(tmp_path)
    assert _tied(MODEL_CLASSES[name].from_pretrained(tmp_path))
    for auto_class in MODEL_CLASSES[name].auto_classes:
        assert _tied(getattr(transformers, auto_class).from_pretrained(tmp_path)), auto_class


@pytest.mark.parametrize("batch_name", sorted(BATCH_MODELS))
def test_save_load_gives_same_loss_and_auto_classes(batch_name, tmp_path, batches):
    name = BATCH_MODELS[batch_name]
    model_class = MODEL_CLASSES[name]
    model = _model(name).eval()
    batch = batches[batch_name]
    with torch.no_grad():
        expected = _tensors(model(**batch))
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    # Exactly the Auto classes that load this model: an RTS export does not claim to be a masked or causal LM.
    # (Every text export also maps the downstream heads, which load from it with a fresh classifier.)
    assert set(saved["auto_map"]) == {*model.config.auto_map_classes, *model_class.auto_classes}
    assert "AutoModelForPreTraining" in saved["auto_map"]
    assert ("AutoModelForMaskedLM" in saved["auto_map"]) == (name == "mlm")
    assert ("AutoModelForCausalLM" in saved["auto_map"]) == (name == "clm")
    for auto_class in model_class.auto_classes:
        loaded = getattr(transformers, auto_class).from_pretrained(tmp_path).eval()
        assert type(loaded) is model_class, auto_class
        with torch.no_grad():
            _assert_same_outputs(_tensors(loaded(**batch)), expected, auto_class)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert type(encoder) is MMFMTextModel
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[key], value, rtol=0, atol=0)


def test_rts_checkpoint_continues_as_mlm_only_when_asked(tmp_path):
    """An RTS checkpoint carries BERT's MLM head too. Loading it as another objective's model is refused,
    naming both objectives; clearing the recorded objective continues it as MLM with the same, tied head."""
    model = _model("rts")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"'mlm' objective.*made for 'rts'"):
        AutoModelForMaskedLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"'clm' objective.*made for 'rts'"):
        MMFMTextForCausalLM.from_pretrained(tmp_path, is_causal=True)
    mlm = MMFMTextForMaskedLM.from_pretrained(tmp_path, pretraining_objective=None, pretraining_config=None)
    assert mlm.config.pretraining_objective == "mlm"
    assert mlm.objective == get_objective("mlm").config_class()
    for key, value in model.mlm_head.state_dict().items():
        torch.testing.assert_close(mlm.mlm_head.state_dict()[key], value, rtol=0, atol=0)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(mlm.encoder.state_dict()[key], value, rtol=0, atol=0)
    assert _tied(mlm)


def test_heads_load_without_mmfm(tmp_path, batches):
    expected, specs = {}, []
    for batch_name, name in sorted(BATCH_MODELS.items()):
        model = _model(name).eval()
        model.save_pretrained(tmp_path / batch_name)
        torch.save(batches[batch_name], tmp_path / f"{batch_name}_inputs.pt")
        with torch.no_grad():
            expected[batch_name] = _tensors(model(**batches[batch_name]))
        specs += [f"{batch_name}:{auto_class}" for auto_class in MODEL_CLASSES[name].auto_classes]
    assert {"mlm:AutoModelForMaskedLM", "clm:AutoModelForCausalLM", "rts:AutoModelForPreTraining"} <= set(
        specs
    )

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # Run from tmp_path so the repository checkout is not on sys.path either.
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *specs], cwd=tmp_path, env=env, check=True, timeout=300
    )
    remote = torch.load(tmp_path / "remote_outputs.pt")
    assert set(remote) == set(specs)
    for spec in specs:
        batch_name = spec.split(":")[0]
        result = remote[spec]
        assert result["module"].startswith("transformers_modules."), result["module"]
        assert result["class"] == MODEL_CLASSES[BATCH_MODELS[batch_name]].__name__
        _assert_same_outputs(result["outputs"], expected[batch_name], spec)


@pytest.mark.parametrize("batch_name", sorted(BATCH_MODELS))
def test_losses_fall_over_a_few_steps(batch_name, batches):
    model = _model(BATCH_MODELS[batch_name]).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = batches[batch_name]
    step_kwargs = get_objective(BATCH_MODELS[batch_name]).step_kwargs(model.objective, 0.0)  # as in training
    losses = []
    for _ in range(20):
        loss = model(**batch, **step_kwargs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


def test_sparse_prediction_gives_the_dense_loss(batches):
    """The training fast path (MLM's `train_kwargs`) scores the same positions as the default dense logits."""
    model = _model("mlm").eval()
    batch = batches["mlm"]
    with torch.no_grad():
        dense = model(**batch)
        sparse = model(**batch, sparse_prediction=True)
    scored = batch["labels"] != -100
    assert dense.logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)
    assert sparse.logits.shape == (int(scored.sum()), model.config.vocab_size)
    torch.testing.assert_close(sparse.logits, dense.logits[scored], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.loss, dense.loss, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_name", ["mlm", "clm", "rts_mlm"])
def test_labels_with_wrong_shape(batch_name, batches):
    model = _model(BATCH_MODELS[batch_name])
    batch = dict(batches[batch_name])
    batch["labels"] = batch["labels"][:, :-1]
    with pytest.raises(ValueError, match=r"`labels` must have the shape of `input_ids`"):
        model(**batch)
    batch["labels"] = batches[batch_name]["labels"].float()
    with pytest.raises(ValueError, match=r"`labels` must hold integer ids"):
        model(**batch)
    batch["labels"] = torch.full_like(batches[batch_name]["labels"], model.config.vocab_size)
    with pytest.raises(ValueError, match=r"`labels` must be -100 or in \[0, 1000\)"):
        model(**batch)


def test_substitution_labels_with_wrong_shape_or_values(batches):
    model = _model("rts")
    batch = dict(batches["rts"])
    batch["substitution_labels"] = batch["substitution_labels"].flatten()
    with pytest.raises(ValueError, match=r"`substitution_labels` must have the shape of `input_ids`"):
        model(**batch)
    batch["substitution_labels"] = torch.full_like(batches["rts"]["substitution_labels"], 2)
    with pytest.raises(ValueError, match=r"`substitution_labels` must be -100 or in \[0, 2\)"):
        model(**batch)


def test_all_padding_batch_is_rejected_by_the_model(batches):
    model = _model("mlm")
    batch = dict(batches["mlm"])
    batch["attention_mask"] = torch.zeros_like(batch["attention_mask"])
    with pytest.raises(ValueError, match="attention_mask.*no real element"):
        model(**batch)


def test_attention_direction_must_fit_the_objective():
    with pytest.raises(
        ValueError, match=r"MMFMTextForCausalLM \(clm\) needs config.is_causal=True, got False"
    ):
        MMFMTextForCausalLM(MMFMTextConfig.from_preset("tiny"))
    for model_class in (MMFMTextForMaskedLM, MMFMTextForPreTraining):
        with pytest.raises(ValueError, match=r"needs config.is_causal=False, got True"):
            model_class(MMFMTextConfig.from_preset("tiny", is_causal=True))


def test_objective_hyperparameters_are_checked_at_construction():
    with pytest.raises(ValueError, match="mlm_probability"):
        MMFMTextForMaskedLM(MMFMTextConfig.from_preset("tiny", pretraining_config={"mlm_probability": 0.0}))
    with pytest.raises(ValueError, match="no_such_field"):
        MMFMTextForPreTraining(MMFMTextConfig.from_preset("tiny", pretraining_config={"no_such_field": 1}))
