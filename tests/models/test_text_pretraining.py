"""Text pretraining models: tied heads, save/load through every Auto class (with and without mmfm),
losses that fall when trained, and labels that are rejected with a clear error."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForPreTraining

import mmfm  # noqa: F401  (registers the Auto classes)
from mmfm.data.collators import (
    DataCollatorForCausalLM,
    DataCollatorForMaskedLM,
    DataCollatorForTokenSubstitution,
)
from mmfm.models import (
    MMFMTextConfig,
    MMFMTextForCausalLM,
    MMFMTextForMaskedLM,
    MMFMTextForPreTraining,
    MMFMTextModel,
)
from tests.objectives import text_examples, text_tokenizer

SCRIPT = Path(__file__).with_name("_load_heads_without_mmfm.py")
AUTO_CLASSES = {
    "mlm": (AutoModelForMaskedLM, MMFMTextForMaskedLM),
    "clm": (AutoModelForCausalLM, MMFMTextForCausalLM),
    "pretraining": (AutoModelForPreTraining, MMFMTextForPreTraining),
}


def _config(name: str) -> MMFMTextConfig:
    if name == "clm":
        return MMFMTextConfig.from_preset("tiny", is_causal=True, pooling="last")
    return MMFMTextConfig.from_preset("tiny")


def _model(name: str):
    torch.manual_seed(0)
    return AUTO_CLASSES[name][1](_config(name))


@pytest.fixture(scope="module")
def batches():
    """One fixed, seeded batch per objective (the pretraining one carries both kinds of labels)."""
    tokenizer = text_tokenizer()
    examples = text_examples(tokenizer, count=8, max_length=40)
    mlm = DataCollatorForMaskedLM(tokenizer, seed=0)(examples)
    substitution = DataCollatorForTokenSubstitution(tokenizer, seed=0)(examples)
    return {
        "mlm": mlm,
        "clm": DataCollatorForCausalLM(tokenizer)(examples),
        "pretraining": {**mlm, "substitution_labels": substitution["substitution_labels"]},
        "substitution": substitution,
    }


def _tied(model) -> bool:
    embedding = model.encoder.embeddings.word_embeddings.weight
    decoder = model.get_output_embeddings().weight
    return decoder is embedding and decoder.data_ptr() == embedding.data_ptr()


@pytest.mark.parametrize("name", sorted(AUTO_CLASSES))
def test_head_is_tied_to_input_embeddings_after_init_and_load(name, tmp_path):
    model = _model(name)
    assert _tied(model)
    model.save_pretrained(tmp_path)
    assert _tied(AUTO_CLASSES[name][1].from_pretrained(tmp_path))
    assert _tied(AUTO_CLASSES[name][0].from_pretrained(tmp_path))


@pytest.mark.parametrize("name", sorted(AUTO_CLASSES))
def test_save_load_gives_same_loss_and_auto_classes(name, tmp_path, batches):
    model = _model(name).eval()
    batch = batches[name]
    with torch.no_grad():
        expected = model(**batch)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert set(saved["auto_map"]) >= {
        "AutoConfig",
        "AutoModel",
        "AutoModelForPreTraining",
        "AutoModelForMaskedLM",
        "AutoModelForCausalLM",
    }
    auto_class, model_class = AUTO_CLASSES[name]
    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is model_class
    with torch.no_grad():
        reloaded = loaded(**batch)
    for key, value in expected.items():
        torch.testing.assert_close(reloaded[key], value, rtol=0, atol=0)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert type(encoder) is MMFMTextModel
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[key], value, rtol=0, atol=0)


def test_pretraining_checkpoint_resumes_mlm_head(tmp_path):
    """A published `ForPreTraining` checkpoint carries its heads: the MLM model loads the same head."""
    model = _model("pretraining")
    model.save_pretrained(tmp_path)
    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path)
    for key, value in model.mlm_head.state_dict().items():
        torch.testing.assert_close(mlm.mlm_head.state_dict()[key], value, rtol=0, atol=0)
    assert _tied(mlm)


def test_heads_load_without_mmfm(tmp_path, batches):
    expected, specs = {}, []
    for name in sorted(AUTO_CLASSES):
        model = _model(name).eval()
        model.save_pretrained(tmp_path / name)
        torch.save(batches[name], tmp_path / f"{name}_inputs.pt")
        with torch.no_grad():
            expected[name] = model(**batches[name])
        spec = f"{name}:{AUTO_CLASSES[name][0].__name__}"
        specs.append(spec)
    specs.append("pretraining_rts:AutoModelForPreTraining")
    model = _model("pretraining").eval()
    model.save_pretrained(tmp_path / "pretraining_rts")
    torch.save(batches["substitution"], tmp_path / "pretraining_rts_inputs.pt")
    with torch.no_grad():
        expected["pretraining_rts"] = model(**batches["substitution"])

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # Run from tmp_path so the repository checkout is not on sys.path either.
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), *specs], cwd=tmp_path, env=env, check=True, timeout=300
    )
    remote = torch.load(tmp_path / "remote_outputs.pt")
    for spec in specs:
        name = spec.split(":")[0]
        result = remote[spec]
        assert result["module"].startswith("transformers_modules."), result["module"]
        assert result["class"] == type(_model(name.split("_")[0])).__name__
        reference = {key: value for key, value in expected[name].items() if isinstance(value, torch.Tensor)}
        assert set(result["outputs"]) == set(reference)
        assert "loss" in reference
        for key, value in reference.items():
            torch.testing.assert_close(result["outputs"][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["mlm", "clm", "pretraining", "substitution"])
def test_losses_fall_over_a_few_steps(name, batches):
    model = _model("pretraining" if name == "substitution" else name).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = batches[name]
    losses = []
    for _ in range(20):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlm", "clm", "pretraining"])
def test_labels_with_wrong_shape(name, batches):
    model = _model(name)
    batch = dict(batches[name])
    batch["labels"] = batch["labels"][:, :-1]
    with pytest.raises(ValueError, match=r"`labels` must have the shape of `input_ids`"):
        model(**batch)
    batch["labels"] = batches[name]["labels"].float()
    with pytest.raises(ValueError, match=r"`labels` must hold integer ids"):
        model(**batch)
    batch["labels"] = torch.full_like(batches[name]["labels"], model.config.vocab_size)
    with pytest.raises(ValueError, match=r"`labels` must be -100 or in \[0, 1000\)"):
        model(**batch)


def test_substitution_labels_with_wrong_shape_or_values(batches):
    model = _model("pretraining")
    batch = dict(batches["substitution"])
    batch["substitution_labels"] = batch["substitution_labels"].flatten()
    with pytest.raises(ValueError, match=r"`substitution_labels` must have the shape of `input_ids`"):
        model(**batch)
    batch["substitution_labels"] = torch.full_like(batches["substitution"]["substitution_labels"], 2)
    with pytest.raises(ValueError, match=r"`substitution_labels` must be -100 or in \[0, 2\)"):
        model(**batch)


def test_all_padding_batch_is_rejected_by_the_model(batches):
    model = _model("mlm")
    batch = dict(batches["mlm"])
    batch["attention_mask"] = torch.zeros_like(batch["attention_mask"])
    with pytest.raises(ValueError, match="attention_mask.*no real element"):
        model(**batch)


def test_attention_direction_must_fit_the_objective():
    with pytest.raises(ValueError, match="is_causal=False"):
        MMFMTextForCausalLM(MMFMTextConfig.from_preset("tiny"))
    for model_class in (MMFMTextForMaskedLM, MMFMTextForPreTraining):
        with pytest.raises(ValueError, match="is_causal=True"):
            model_class(MMFMTextConfig.from_preset("tiny", is_causal=True))
