"""PEFT on every downstream head with mmfm's defaults (`mmfm.peft_defaults`): no `target_modules` needed for
LoRA, DoRA and (IA)^3; one training step moves only the adapter and the head; the saved adapter reloads through
the `AutoPeftModel*` class `PEFT_TASKS` names, without extra arguments, to identical outputs; merging equals
the adapter."""

import re

import peft
import pytest
import torch
from peft import IA3Config, LoraConfig, get_peft_model

from mmfm.peft_defaults import PEFT_TASKS, TRANSFORMER_BLOCK_LINEARS, peft_task
from tests.model_inputs import HEADS, build_model, head_config, model_inputs

# One head per modality for the other methods; every head for LoRA.
ONE_PER_MODALITY = [
    "MMFMTextForSequenceClassification",
    "MMFMTextForTokenClassification",
    "MMFMVisionForImageClassification",
    "MMFMAudioForAudioClassification",
    "MMFMGraphForGraphClassification",
    "MMFMTimeSeriesForPrediction",
]
CASES = [("lora", name) for name in HEADS] + [
    (method, name) for method in ("dora", "ia3") for name in ONE_PER_MODALITY
]


def _adapter_config(method: str, task):
    common = {"task_type": task.task_type, "modules_to_save": list(task.modules_to_save)}
    if method == "ia3":
        return IA3Config(**common)
    return LoraConfig(r=4, lora_alpha=8, use_dora=method == "dora", **common)


def _adapted_modules(model) -> set[str]:
    prefix = "base_model.model."
    return {
        name.removeprefix(prefix)
        for name, module in model.named_modules()
        if isinstance(module, peft.tuners.tuners_utils.BaseTunerLayer)
    }


@pytest.mark.parametrize(("method", "name"), CASES)
def test_adapter_without_target_modules_trains_saves_reloads_and_merges(method, name, tmp_path):
    torch.manual_seed(0)
    config = head_config(name)
    build_model(name, config).save_pretrained(tmp_path / "base")
    head_class = HEADS[name][1]
    base = head_class.from_pretrained(tmp_path / "base")
    task = peft_task(base)
    model = get_peft_model(base, _adapter_config(method, task))

    adapted = _adapted_modules(model)
    assert adapted, "no layer adapted"
    if method == "ia3":
        assert {n.rsplit(".", 1)[-1] for n in adapted} == {"qkv", "fc2"}
    else:  # exactly the encoder's transformer-block linears: never the GIN MLPs or other layers
        blocks = {n for n, m in base.named_modules() if re.fullmatch(TRANSFORMER_BLOCK_LINEARS, n)}
        assert adapted == blocks and len(blocks) == 4 * base.config.num_hidden_layers

    batch = model_inputs(name, config)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert any(m in n for n in trainable for m in task.modules_to_save), "the head does not train"
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(**batch).loss.backward()
    optimizer.step()
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen parameter {n} moved"
    assert any(not torch.equal(p, trainable[n]) for n, p in model.named_parameters() if n in trainable)

    model.eval()
    with torch.no_grad():
        expected = model(**batch).loss
    model.save_pretrained(tmp_path / "adapter")
    auto_peft = getattr(peft, task.auto_peft_class)
    reloaded = auto_peft.from_pretrained(tmp_path / "adapter").eval()  # no import_allowlist, no target list
    assert type(reloaded.get_base_model()) is head_class
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).loss, expected, rtol=0, atol=1e-6)
        merged = reloaded.merge_and_unload()
        assert type(merged) is head_class
        torch.testing.assert_close(merged(**batch).loss, expected, rtol=1e-4, atol=1e-5)


def test_every_model_class_has_a_peft_task():
    from mmfm.models import ENCODER_CLASSES, HEAD_CLASSES

    names = {c.__name__ for c in ENCODER_CLASSES.values()} | {
        h.__name__ for hs in HEAD_CLASSES.values() for h in hs
    }
    assert set(PEFT_TASKS) == names
    assert PEFT_TASKS["MMFMTextForSequenceClassification"].task_type == "SEQ_CLS"
    assert PEFT_TASKS["MMFMTextForTokenClassification"].task_type == "TOKEN_CLS"
    assert PEFT_TASKS["MMFMTimeSeriesForPrediction"].modules_to_save == ("prediction_head",)
    with pytest.raises(ValueError, match="No PEFT defaults"):
        peft_task(torch.nn.Linear(1, 1))
    # Adapters without a task type name their base class's module, which peft imports only if allowlisted.
    allowlist = peft.auto.get_default_import_allowlist()
    assert "mmfm.models" in allowlist and "transformers" in allowlist
    assert peft.auto.check_import_allowlist(allowlist, "mmfm.models.modeling_mmfm_vision")
    assert not peft.auto.check_import_allowlist(allowlist, "mmfm.training")


def test_graph_lora_leaves_the_gin_layers_alone():
    model = get_peft_model(build_model("MMFMGraphForGraphClassification"), LoraConfig(r=2))
    adapted = _adapted_modules(model)
    assert not any("message_passing" in n for n in adapted)
    gin = [n for n, _ in model.named_modules() if "message_passing" in n and n.endswith("fc1")]
    assert gin, "the tiny graph config has GIN layers"
