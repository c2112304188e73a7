"""One suite for every registered encoder and the composite `MMFMModel` (tiny configs, CPU, fixed seeds)."""

import copy

import pytest
import torch

from tests.model_inputs import (
    ALL_MODELS,
    build_model,
    make_inputs,
    primary_output,
    real_token_states,
    tiny_config,
)

ATOL = 2e-5


def _fresh(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = tiny_config(name, **overrides)
    model = build_model(name, config)
    batch, singles = make_inputs(name, config, seed)
    return model, batch, singles


def _loss(name: str, output) -> torch.Tensor:
    """A scalar touching every output the parameters can influence."""
    if name == "composite":
        embeddings = sum(e.pow(3).sum() for e in output.embeddings.values())
        return embeddings + sum(logits.sum() for logits in output.logits.values())
    return output.last_hidden_state.pow(2).mean() + output.pooler_output.pow(3).sum()


def _enable_checkpointing(model) -> None:
    # transformers >= 5.2x renames gradient checkpointing to activation checkpointing.
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward_reaches_every_parameter(name):
    model, batch, _ = _fresh(name)
    model.train()
    output = model(**batch)
    assert torch.isfinite(primary_output(name, output)).all()
    _loss(name, output).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n
    zero = [n for n, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, f"parameters with an all-zero gradient: {zero}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_save_then_load_gives_identical_outputs(name, tmp_path):
    model, batch, _ = _fresh(name)
    model.eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected, got = primary_output(name, model(**batch)), primary_output(name, reloaded(**batch))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_eager_and_sdpa_agree(name):
    model, batch, singles = _fresh(name)
    model.eval()
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        sdpa = model(**batch)
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        eager = model(**batch)
    torch.testing.assert_close(primary_output(name, eager), primary_output(name, sdpa), rtol=0, atol=ATOL)
    for i in range(len(singles)):
        a, _ = real_token_states(name, eager, i, eager)
        b, _ = real_token_states(name, sdpa, i, sdpa)
        torch.testing.assert_close(a, b, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_gradient_checkpointing_gives_same_gradients(name):
    model, batch, _ = _fresh(name)
    model.train()
    _loss(name, model(**batch)).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    checkpointed = copy.deepcopy(model)
    checkpointed.zero_grad(set_to_none=True)
    _enable_checkpointing(checkpointed)
    layers = [m for m in checkpointed.modules() if getattr(m, "gradient_checkpointing", False)]
    assert layers, "no layer switched to gradient checkpointing"
    _loss(name, checkpointed(**batch)).backward()
    for n, p in checkpointed.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-6, msg=n)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_padded_batch_matches_unpadded_samples(name):
    model, batch, singles = _fresh(name)
    model.eval()
    with torch.no_grad():
        batched = model(**batch)
        for i, single in enumerate(singles):
            alone = model(**single)
            torch.testing.assert_close(
                primary_output(name, batched)[i], primary_output(name, alone)[0], rtol=0, atol=ATOL
            )
            in_batch, by_itself = real_token_states(name, batched, i, alone)
            torch.testing.assert_close(in_batch, by_itself, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_hidden_states_and_attentions_are_returned(name):
    model, batch, _ = _fresh(name, attn_implementation="eager") if name != "composite" else _fresh(name)
    model.eval()
    if name == "composite":
        model.set_attn_implementation("eager")
    with torch.no_grad():
        output = model(**batch, output_hidden_states=True, output_attentions=True)
    outputs = output.encoder_outputs.values() if name == "composite" else [output]
    for encoder_output in outputs:
        layers = len(encoder_output.attentions)
        assert len(encoder_output.hidden_states) == layers + 1
        torch.testing.assert_close(encoder_output.hidden_states[-1], encoder_output.last_hidden_state)
        probabilities = encoder_output.attentions[0].sum(-1)
        torch.testing.assert_close(probabilities, torch.ones_like(probabilities), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_return_dict_false_gives_a_tuple(name):
    model, batch, _ = _fresh(name)
    model.eval()
    with torch.no_grad():
        as_tuple = model(**batch, return_dict=False)
        as_output = model(**batch)
    assert isinstance(as_tuple, tuple)
    assert len(as_tuple) == len(as_output.to_tuple())
