"""The text heads in transformers' own tools: `generate`, `pipeline("text-generation")`, PEFT's
`AutoPeftModelForCausalLM`, and `Trainer.evaluate` with `compute_metrics` on masked-LM logits."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from peft import AutoPeftModelForCausalLM, LoraConfig, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, pipeline

import mmfm  # noqa: F401  (registers the Auto classes)
from mmfm.data.collators import DataCollatorForMaskedLM
from mmfm.models import MMFMTextConfig, MMFMTextForCausalLM, MMFMTextForMaskedLM
from mmfm.processing import train_tokenizer

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a red circle and a blue square",
    "one two three four",
] * 20


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=200)


@pytest.fixture(scope="module")
def causal_folder(tokenizer, tmp_path_factory):
    """A saved causal LM with its tokenizer, as the recipe exports it."""
    folder = tmp_path_factory.mktemp("clm")
    config = MMFMTextConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), is_causal=True, pad_token_id=tokenizer.pad_token_id
    )
    torch.manual_seed(0)
    MMFMTextForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _greedy(model, input_ids: torch.Tensor, steps: int) -> torch.Tensor:
    """Greedy decoding by hand: append the argmax of the last position, `steps` times."""
    ids = input_ids
    for _ in range(steps):
        logits = model(input_ids=ids).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


def test_generate_matches_greedy_decoding_by_hand(causal_folder, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(causal_folder).eval()
    assert isinstance(model, MMFMTextForCausalLM) and model.can_generate()
    prompt = tokenizer(["the quick brown"], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=6, do_sample=False, eos_token_id=None)
        expected = _greedy(model, prompt["input_ids"], 6)
    torch.testing.assert_close(generated, expected, rtol=0, atol=0)


def test_text_generation_pipeline_runs_on_an_export(causal_folder):
    generator = pipeline("text-generation", model=str(causal_folder))
    result = generator("the quick", max_new_tokens=4, do_sample=False, return_full_text=True)
    assert isinstance(result, list) and result[0]["generated_text"].startswith("the quick")
    ids = generator("the quick", max_new_tokens=4, do_sample=False, return_tensors=True)[0][
        "generated_token_ids"
    ]
    assert len(ids) >= 4


def test_auto_peft_model_for_causal_lm_loads_a_lora_adapter(causal_folder, tokenizer, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(causal_folder)
    peft_model = get_peft_model(
        base, LoraConfig(task_type=TaskType.CAUSAL_LM, r=4, target_modules=["qkv", "out_proj"])
    )
    with torch.no_grad():  # make the adapter do something
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    peft_model.eval()
    prompt = tokenizer(["a red circle"], return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**prompt).logits
    peft_model.save_pretrained(tmp_path)
    reloaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**prompt).logits, expected, rtol=0, atol=1e-6)
        generated = reloaded.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 3


def test_trainer_compute_metrics_gets_dense_masked_lm_logits(tokenizer, tmp_path):
    config = MMFMTextConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id
    )
    torch.manual_seed(0)
    model = MMFMTextForMaskedLM(config)
    rows = Dataset.from_dict({"input_ids": [tokenizer(t)["input_ids"] for t in TEXTS[:12]]})
    seen = {}

    def compute_metrics(prediction):
        logits, labels = prediction.predictions, prediction.label_ids
        seen["shapes"] = (logits.shape, labels.shape)
        scored = labels != -100
        return {"masked_accuracy": float((logits.argmax(-1)[scored] == labels[scored]).mean())}

    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to=[], use_cpu=True
        ),
        data_collator=DataCollatorForMaskedLM(tokenizer, seed=0),
        eval_dataset=rows,
        compute_metrics=compute_metrics,
    )
    metrics = trainer.evaluate()
    (logits_shape, labels_shape) = seen["shapes"]
    assert logits_shape[:2] == labels_shape and logits_shape[2] == config.vocab_size  # (N, L, V) vs (N, L)
    assert np.isfinite(metrics["eval_loss"]) and 0.0 <= metrics["eval_masked_accuracy"] <= 1.0
