"""Every public model class behaves as transformers' own models do (the points of transformers'
`ModelTesterMixin` that apply): hidden states and attentions on request, with gradients; tuple outputs;
unknown arguments rejected; `main_input_name` a real input; deepcopy, pickle and `torch.save`; attention
backends; save/load. Parametrized over `ALL_MODEL_CLASSES` (encoders, the composite, every registered
objective's model, every downstream head), so a new encoder, objective or head is tested for free."""

import copy
import inspect
import io
import pickle

import pytest
import torch

from tests.model_inputs import ALL_MODEL_CLASSES, HEADS, OBJECTIVES, build_model, model_config, model_inputs

ATOL = 2e-5


def _run(model, batch):
    """One forward pass; the global generator is seeded first, so masks an objective draws itself (when the
    batch gives no noise) are the same in every call."""
    torch.manual_seed(123)
    return model(**batch)


def _fresh(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = model_config(name, **overrides)
    return build_model(name, config), model_inputs(name, config, seed)


def _encoder_outputs(name: str, output) -> list:
    """The outputs that carry hidden states/attentions: the composite's per encoder, else the output."""
    return list(output.encoder_outputs.values()) if name == "composite" else [output]


def _scalar(name: str, output) -> torch.Tensor:
    """A scalar depending on every output: the objective's or head's loss, or a function of the representations."""
    if name in OBJECTIVES or name in HEADS:
        return output.loss
    if name == "composite":
        embeddings = sum(e.pow(3).sum() for e in output.embeddings.values())
        return embeddings + sum(logits.sum() for logits in output.logits.values())
    return output.last_hidden_state.pow(2).mean() + output.pooler_output.pow(3).sum()


def _comparable(name: str, output) -> torch.Tensor:
    """One tensor summarising an output, for equality checks."""
    if name in OBJECTIVES or name in HEADS:
        return output.loss
    if name == "composite":
        return torch.cat([e.flatten() for e in output.embeddings.values()])
    return output.pooler_output


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_hidden_states_and_attentions_on_request_with_gradients(name):
    model, batch = _fresh(name, attn_implementation="eager") if name != "composite" else _fresh(name)
    if name == "composite":
        model.set_attn_implementation("eager")
    model.train()
    output = model(**batch, output_hidden_states=True, output_attentions=True)
    for encoder_output in _encoder_outputs(name, output):
        layers = len(encoder_output.attentions)
        assert layers >= 1 and len(encoder_output.hidden_states) == layers + 1
        assert all(a is not None for a in encoder_output.attentions)
        encoder_output.hidden_states[0].retain_grad()
        encoder_output.attentions[0].retain_grad()
    _scalar(name, output).backward()
    for encoder_output in _encoder_outputs(name, output):
        assert encoder_output.hidden_states[0].grad is not None, "no gradient reaches the first hidden state"
        assert encoder_output.attentions[0].grad is not None, "no gradient reaches the attention weights"
        assert encoder_output.hidden_states[0].grad.abs().sum() > 0
    # Without the flags (and the config's defaults off), nothing is collected.
    quiet = model(**batch)
    for encoder_output in _encoder_outputs(name, quiet):
        assert encoder_output.hidden_states is None and encoder_output.attentions is None


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_config_output_flags_are_the_defaults(name):
    model, batch = _fresh(name)
    configs = (
        [model.config.modality_config(m) for m in model.config.modalities]
        if name == "composite"
        else [model.config]
    )
    for config in configs:
        config.output_hidden_states = True
    with torch.no_grad():
        output = model.eval()(**batch)
    for encoder_output, config in zip(_encoder_outputs(name, output), configs):
        assert encoder_output.hidden_states is not None
        assert len(encoder_output.hidden_states) == config.num_hidden_layers + 1


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_tuple_outputs_with_return_dict_false(name):
    model, batch = _fresh(name)
    model.eval()
    with torch.no_grad():
        as_output = _run(model, {**batch, "output_hidden_states": True})
        as_tuple = _run(model, {**batch, "output_hidden_states": True, "return_dict": False})
        model.config.return_dict = False  # the config's default, as transformers models honour it
        from_config = _run(model, batch)
    assert isinstance(as_tuple, tuple) and isinstance(from_config, tuple)
    expected = as_output.to_tuple()
    assert len(as_tuple) == len(expected)
    torch.testing.assert_close(as_tuple[0], expected[0], rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_unknown_keyword_arguments_are_rejected(name):
    model, batch = _fresh(name)
    with pytest.raises((TypeError, ValueError), match="no_such_argument"):
        model(**batch, no_such_argument=1)


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_main_input_name_is_an_input_of_forward(name):
    model, batch = _fresh(name)
    parameters = inspect.signature(model.forward).parameters
    assert model.main_input_name in parameters, (model.main_input_name, list(parameters))
    assert model.main_input_name in batch
    assert not any(p.kind == p.VAR_KEYWORD for p in parameters.values()), "forward must not swallow **kwargs"


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_deepcopy_pickle_and_torch_save_keep_the_model(name):
    model, batch = _fresh(name)
    model.eval()
    with torch.no_grad():
        expected = _comparable(name, _run(model, batch))
        copies = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        copies.append(torch.load(buffer, weights_only=False))
        for clone in copies:
            assert type(clone) is type(model)
            torch.testing.assert_close(_comparable(name, _run(clone.eval(), batch)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_every_parameter_gets_a_finite_gradient(name):
    model, batch = _fresh(name)
    model.train()
    _scalar(name, model(**batch)).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n


@pytest.mark.parametrize("name", ALL_MODEL_CLASSES)
def test_save_and_reload_give_identical_outputs(name, tmp_path):
    model, batch = _fresh(name)
    model.eval()
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            _comparable(name, _run(reloaded, batch)), _comparable(name, _run(model, batch)), rtol=0, atol=0
        )


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_models_agree_across_attention_backends(name):
    model, batch = _fresh(name)
    model.eval()
    with torch.no_grad():
        sdpa = _run(model, batch).loss
        model.set_attn_implementation("eager")
        assert all(
            getattr(m, "config", model.config)._attn_implementation == "eager"
            for m in model.modules()
            if hasattr(m, "qkv")
        )
        eager = _run(model, batch).loss
    torch.testing.assert_close(eager, sdpa, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objective_models_train_with_gradient_checkpointing(name):
    model, batch = _fresh(name)
    model.train()
    _run(model, batch).loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    checkpointed = copy.deepcopy(model)
    checkpointed.zero_grad(set_to_none=True)
    enable = (
        getattr(checkpointed, "activation_checkpointing_enable", None)
        or checkpointed.gradient_checkpointing_enable
    )
    enable()
    assert any(getattr(m, "gradient_checkpointing", False) for m in checkpointed.modules())
    _run(checkpointed, batch).loss.backward()
    for n, p in checkpointed.named_parameters():
        torch.testing.assert_close(p.grad, expected[n], rtol=1e-5, atol=1e-6, msg=n)
